"""The server: the app, the runtime, the request pipeline, delivery on the socket, the listening server."""
