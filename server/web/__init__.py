"""Flask app, Socket.IO events and the REST API."""
