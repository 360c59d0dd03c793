"""The read-only web view of the archive (``deportwatch serve``): pages, feeds and a JSON API."""
