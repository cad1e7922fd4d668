#!/usr/bin/env bash
# Prints the home of a Java 17 runtime: $JAVA_HOME when it is 17, else the first 17 under /usr/lib/jvm.
# Exits 1 when there is none. The machine may carry newer JDKs too, so the default `java` is not trusted.
is17() { [ -x "$1/bin/java" ] && "$1/bin/java" -version 2>&1 | grep -qE 'version "17[."]'; }
if [ -n "${JAVA_HOME:-}" ] && is17 "$JAVA_HOME"; then echo "$JAVA_HOME"; exit 0; fi
for d in /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/*17*; do
  if is17 "$d"; then readlink -f "$d"; exit 0; fi
done
exit 1
