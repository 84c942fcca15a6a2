"""HTTP entrypoint pieces: error handlers, middleware and the assembled routers."""
