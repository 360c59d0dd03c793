"""Scrapy's download side as deportwatch configures it: throttle, retry, redirects,
charsets and the offline replay of snapshots."""
