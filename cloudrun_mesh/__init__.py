"""cloudrun-mesh: configuration, offline plan, smoke check and the mock engine they share."""
