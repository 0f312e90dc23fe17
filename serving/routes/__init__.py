"""HTTP routes: the only HTTP-aware code. Each validates, delegates and returns."""
