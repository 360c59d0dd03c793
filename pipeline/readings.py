"""Pipeline stage — store readings: counter totals (figures) into ``counter_readings``."""

from __future__ import annotations

from db.repository.readings import store_reading
from pipeline.items import CounterItem, Item
from pipeline.store import READINGS_STAT, ArchiveStage, spooled
from pipeline.writer import ArchiveUnavailable


class ReadingStorePipeline(ArchiveStage):
    """Stores each counter reading once: the same value for the same as-of date,
    read again on a later crawl, adds no row (a changed value or a new date does)."""

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, CounterItem):
            return item
        try:
            with self.writer.item(item) as session:
                if store_reading(session, self._source_id(session, item.source), item):
                    self.count(READINGS_STAT)
        except ArchiveUnavailable as exc:
            raise spooled(exc) from None
        return item
