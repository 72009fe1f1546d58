"""`clickstream api`: the HTTP query API and live web view, reading Redis only."""
