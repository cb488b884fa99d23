"""Scorestream's streaming edge: settings, topics, the Faust app, metrics and the CLI."""
