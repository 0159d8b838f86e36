"""HTTP routes of the edge node, one module per resource; `app.py` includes them."""
