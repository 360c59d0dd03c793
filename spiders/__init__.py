"""One spider class per source *kind*; sources themselves are data (sources.toml)."""

from spiders.base import SourceSpider
from spiders.counters import CountersSpider
from spiders.feed import FeedSpider
from spiders.listing import ListingSpider
from spiders.sitemap import SitemapSpider
from spiders.telegram import TelegramSpider

SPIDERS_BY_KIND: dict[str, type[SourceSpider]] = {
    spider.kind: spider
    for spider in (FeedSpider, SitemapSpider, ListingSpider, TelegramSpider, CountersSpider)
}
