"""The central communecast service: REST API, scheduler, MQTT side, media pipeline."""
