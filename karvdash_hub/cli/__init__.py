"""``karvdashctl``: the dashboard's REST API from a terminal or a notebook."""
