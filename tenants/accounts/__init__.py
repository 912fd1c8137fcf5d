"""Accounts: sign-in, hand-over between hosts, invitations and the people behind them."""
