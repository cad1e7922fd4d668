"""What the tests do on the asset lineage page, in terms of what a person sees and clicks.

Selectors come from the UI as rendered by Dagster 1.13.27: roles and names where the UI has them; asset nodes
are the graph's `foreignObject`s, told apart by their links to `/assets/<key>` (node titles show only the
last part of a key, so `features/x` and `online/x` both read `x`).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

NODE_LINK = re.compile(r"^/assets/(?P<key>[^?]+)\?view=partitions$")


def open_lineage(page, selection: str | None = None) -> None:
    """Open the global asset lineage, filtered by an asset selection (`+key:"online/x"`) when given."""
    page.goto("/asset-groups" + (f"~{quote(selection, safe='')}/" if selection else ""))
    page.get_by_role("button", name=re.compile(r"Materialize (all|selected)")).first.wait_for()


def expand_all_groups(page, group_names) -> None:
    """Show the assets inside every group box (the graph starts with groups collapsed): the UI's Alt+E."""
    for name in group_names:
        page.get_by_role("button", name=name).first.wait_for()
    if page.get_by_role("img", name="unfold_less").count() == 0:  # Alt+E toggles: only press it when all are shut
        page.keyboard.press("Alt+e")
    page.get_by_role("img", name="unfold_less").first.wait_for()


def asset_node(page, key: str):
    """The graph node of the asset `key` (`features/user_upvotes`)."""
    return page.locator("foreignObject").filter(has=page.locator(f'a[href="/assets/{key}?view=partitions"]'))


def visible_asset_keys(page) -> set[str]:
    """Keys of the asset nodes the graph shows now."""
    hrefs = page.locator("foreignObject a[href^='/assets/']").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return {match["key"] for href in hrefs if (match := NODE_LINK.match(href))}


def launch_partition(page, partition: str) -> None:
    """In the open materialize dialog: accept the upstream warning if asked, pick one partition, launch."""
    confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm")
    launch_dialog = page.get_by_role("dialog").filter(has_text="Partition selection")
    confirm.or_(launch_dialog).first.wait_for()
    if confirm.is_visible():  # "upstream assets have not been materialized yet": the raw tables are loaded though
        confirm.click()
    keys = launch_dialog.get_by_role("textbox").first
    keys.wait_for()
    show_all = launch_dialog.get_by_role("button", name="Show all partitions")
    try:  # the dialog starts with the last 90 days only, once it has counted the partitions
        show_all.wait_for(timeout=15_000)
    except PlaywrightTimeoutError:
        pass  # fewer partitions than that: all are shown
    else:
        show_all.click()
        show_all.wait_for(state="hidden")
    keys.fill(partition)
    keys.press("Enter")
    launch_dialog.get_by_text("1 partition", exact=True).wait_for()
