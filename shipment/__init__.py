"""Shipment notices from suppliers and fulfillment push-back (the shipments issue)."""
