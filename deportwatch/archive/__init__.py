"""What the archive tells: records of articles, exports, figures, health, search filters.

Shared by the CLI, the web view and the service's alerts; reads the archive through db/."""
