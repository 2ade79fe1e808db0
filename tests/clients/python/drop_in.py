"""pymessenger, unchanged but for its graph_url, sending through Herald.

Run by tests/api/clients.rs with HERALD_GRAPH_URL, HERALD_TOKEN, OPEN_PSID and CLOSED_PSID in the
environment; prints one JSON line with the two answers the library returned.
"""
import json
import os

from pymessenger.bot import Bot

bot = Bot(os.environ["HERALD_TOKEN"])
bot.graph_url = os.environ["HERALD_GRAPH_URL"]  # was https://graph.facebook.com/v2.6
sent = bot.send_text_message(os.environ["OPEN_PSID"], "Your teapot ships today.")
refused = bot.send_text_message(os.environ["CLOSED_PSID"], "Anything else?")
print(json.dumps({"sent": sent, "refused": refused}))
