package platform.flink;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Optional;
import java.util.PriorityQueue;

import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.assigners.FileSplitAssigner;

/**
 * Hands out a file source's splits in the order of their paths (then offsets), so a watched directory of
 * stream files is read as a log: a backlog of waiting files in the order they were named, not in the order
 * the directory happens to list them (Flink's default assigner keeps listing order). The platform names
 * stream files so that name order is event-time order (streaming/event_files.py).
 */
public final class NameOrderSplitAssigner implements FileSplitAssigner {

    private static final Comparator<FileSourceSplit> PATH_ORDER =
            Comparator.comparing((FileSourceSplit split) -> split.path().getPath()).thenComparingLong(FileSourceSplit::offset);

    private final PriorityQueue<FileSourceSplit> waiting = new PriorityQueue<>(PATH_ORDER);

    public NameOrderSplitAssigner(Collection<FileSourceSplit> splits) {
        waiting.addAll(splits);
    }

    @Override
    public Optional<FileSourceSplit> getNext(String hostname) {
        return Optional.ofNullable(waiting.poll());
    }

    @Override
    public void addSplits(Collection<FileSourceSplit> splits) {
        waiting.addAll(splits);
    }

    @Override
    public Collection<FileSourceSplit> remainingSplits() {
        return new ArrayList<>(waiting);
    }

    /** What FileSource.Builder#setSplitAssigner takes. */
    public static final class Provider implements FileSplitAssigner.Provider {
        private static final long serialVersionUID = 1L;

        @Override
        public FileSplitAssigner create(Collection<FileSourceSplit> initialSplits) {
            return new NameOrderSplitAssigner(initialSplits);
        }
    }
}
