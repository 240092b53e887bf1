"""Report writers (the top floor): they read results and write Markdown, JSON and figures;
nothing below ``mfid/cli`` imports them."""
