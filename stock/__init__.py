"""Stock feeds, availability and pushing quantities to channels (the stock issue)."""
