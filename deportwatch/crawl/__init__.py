"""One crawl of some sources, in one process: Scrapy wired to the spiders and the pipeline,
its run rows, its logs, and the spool drained before it starts."""
