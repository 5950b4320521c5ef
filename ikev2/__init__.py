"""ikev2d: an asyncio IKEv2 daemon with MOBIKE and Mobile IPv6 hooks."""
