"""Studies: equal-budget random search per method, selection on validation, a cross-dataset leaderboard."""
