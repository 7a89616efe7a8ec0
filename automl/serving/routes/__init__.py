"""The API's routers, one per area; :func:`automl.serving.app.create_app` includes them."""
