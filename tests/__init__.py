"""The test suite: unit/ (no services), integration/ (real Kafka and Redis), chaos/,
deploy/ (chart, image, dashboards). The top layer: may import everything."""
