"""Where results go: payloads, the Socket.IO sink and the history store."""
