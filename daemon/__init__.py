"""ringi: an approval daemon run over email and shared folders."""
