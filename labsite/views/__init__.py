"""The site's views, one module per concern; labsite.urls imports each. Shared parsing and answers: common."""
