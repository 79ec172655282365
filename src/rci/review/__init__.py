"""The review page for moderators (`rci review`): recent scores, the evidence behind one, verdicts to rci.reviews."""
