"""The words of the demo: incidents and maintenance as an operator would have written them (Markdown).

Each story's updates are (time after the start, update data); "components" maps component names to
the status the update sets. The open incident follows the public record of the October 2009 Sidekick
outage."""
from datetime import timedelta as td

SIDEKICK = {
    "name": "Loss of personal data stored on Danger servers",
    "impact": "critical",
    "components": ["Contacts sync", "Calendar sync", "Photos", "Notes", "Data service"],
    "updates": [
        (td(0), {"status": "investigating", "components": {
            "Contacts sync": "major_outage", "Calendar sync": "major_outage", "Photos": "major_outage",
            "Notes": "major_outage", "Data service": "partial_outage"},
         "message": "Sidekick subscribers cannot sync contacts, calendar, photos or notes, and many have no "
                    "data service. We are investigating with our partner Danger.\n\n"
                    "**Please do not remove your battery, turn your Sidekick off or reset it.** Your phone "
                    "still holds a copy of your data in memory; a reset would erase it."}),
        (td(hours=5), {"status": "identified", "components": {"Data service": "degraded_performance"},
         "message": "A server failure in the Danger data centre is the cause. It affects the storage that "
                    "keeps the network copy of your personal data. Data service is coming back in stages."}),
        (td(days=1, hours=2), {"status": "identified", "components": {"Data service": "operational"},
         "message": "Data service (web, email and messaging) is working again for all subscribers.\n\n"
                    "Syncing personal data stays switched off while we recover the storage. Keep your phone "
                    "on and charged, and do not reset it."}),
        (td(days=3, hours=1), {"status": "identified",
         "message": "We owe you a plain answer. Based on Danger's latest recovery assessment, personal "
                    "information that is no longer on your Sidekick (contacts, calendar entries, to-do "
                    "lists, photos) **has almost certainly been lost** from our servers.\n\n"
                    "Recovery work continues and we will tell each of you, personally, what it finds for "
                    "*your* account. Check your account at any time on this site under **Check my account**."}),
        (td(days=4, hours=20), {"status": "identified", "components": {"Contacts sync": "partial_outage"},
         "message": "Better news: engineers have recovered **most** of the lost data from a backup "
                    "database. We are checking it and will restore it to phones in batches, starting with "
                    "contacts.\n\n- Contacts: restoring now, in batches\n- Calendar, photos, notes: still "
                    "being checked\n\nYou will get a message when your data is back on your phone."}),
        (td(days=6, hours=1), {"status": "identified",
         "components": {"Calendar sync": "partial_outage"},
         "message": "Contacts are back on about half of the affected phones, and calendar restores have begun.\n\n"
                    "Every affected subscriber receives a **free month of data service**; subscribers whose "
                    "data cannot be recovered will also be offered a **$100 gift card**. The offer will be "
                    "sent to you directly once your recovery is complete."}),
    ],
}

EMAIL_DELAY = {
    "name": "Email arriving up to an hour late",
    "impact": "minor",
    "components": ["Email"],
    "updates": [
        (td(0), {"status": "investigating", "components": {"Email": "degraded_performance"},
         "message": "Some subscribers are receiving email up to an hour late. We are looking into it."}),
        (td(minutes=40), {"status": "identified",
         "message": "A mail relay ran out of disk space and queued messages instead of delivering them. "
                    "We are adding space and draining the queue; no email has been lost."}),
        (td(hours=1, minutes=50), {"status": "monitoring",
         "message": "The queue is drained and new email arrives normally. We are watching delivery times."}),
        (td(hours=3), {"status": "resolved", "message": "Email delivery has been normal for an hour. Resolved."}),
        (td(days=2), {"status": "postmortem",
         "message": "### What happened\nA log rotation job failed on one mail relay, its disk filled, and "
                    "the relay queued mail for 2 hours 10 minutes.\n\n### What we changed\n- Disk usage "
                    "alerts now fire at 70 %, not 95 %\n- Log rotation failures page the on-call engineer\n"
                    "- Relays share load, so one full disk slows nobody's mail"}),
    ],
}

MESSAGING_DELAY = {
    "name": "Instant messages not delivered",
    "impact": "major",
    "components": ["Messaging"],
    "updates": [
        (td(0), {"status": "investigating", "components": {"Messaging": "partial_outage"},
         "message": "Instant messages sent from Sidekick phones are not being delivered. SMS is not affected."}),
        (td(minutes=35), {"status": "identified",
         "message": "A configuration change to the messaging gateway caused this. We are rolling it back."}),
        (td(hours=1, minutes=25), {"status": "resolved",
         "message": "The change is rolled back and queued messages have been delivered. Resolved."}),
    ],
}

DONE_MAINTENANCE = {
    "plan": {"name": "Data network upgrade", "impact": "minor",
             "message": "We are upgrading data network equipment. Web browsing and apps may drop for a "
                        "few minutes at a time during the window. Calls and SMS are not affected."},
    "updates": [
        (td(0), {"status": "in_progress", "message": "The upgrade has started."}),
        (td(hours=1, minutes=40), {"status": "verifying",
         "message": "The new equipment is in place; we are checking traffic."}),
        (td(hours=1, minutes=55), {"status": "completed", "message": "The upgrade is complete. Thank you for your patience."}),
    ],
}

UPCOMING_MAINTENANCE = {
    "name": "Moving sync storage to a replicated cluster", "impact": "minor",
    "message": "To make sure a single storage failure can never again take your data with it, we are moving "
               "contacts and calendar storage to a replicated cluster with off-site backups.\n\n"
               "Syncing pauses for up to **4 hours**; nothing on your phone is affected. Please keep your "
               "phone on as usual.",
}
