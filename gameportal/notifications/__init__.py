"""The durable message queue (the seed's Notification/Message) and its channels."""
