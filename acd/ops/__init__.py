"""Running the daemon in production: systemd notifications (and the metrics it exports)."""
