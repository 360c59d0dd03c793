"""Pipeline stage — store readings: counter totals (figures) into ``counter_readings``."""

from __future__ import annotations

from db.repository import store_reading
from pipeline.store import READINGS_STAT, ArchiveStage
from spiders.items import CounterItem, Item


class ReadingStorePipeline(ArchiveStage):
    """Stores each counter reading once: the same value for the same as-of date,
    read again on a later crawl, adds no row (a changed value or a new date does)."""

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, CounterItem):
            return item
        with self.writer.item() as session:
            added = store_reading(session, self._source_id(session, item.source), item)
        if added:
            self.count(READINGS_STAT)
        return item
