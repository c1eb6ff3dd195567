"""Where results go: payloads, the Socket.IO sink, the history store, the alert webhook; from_settings builds them."""
