"""The dashboard's and the report's pages: status figures, charts as SVG, HTML."""
