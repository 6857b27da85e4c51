// Package notify tells people that a message was stopped: the list's
// administrator, its owner, the recipients and, where the configuration asks
// for it, the sender. It renders IceWarp-style templates (%%VirusName%% and
// friends) and submits the result over plain SMTP to the local MTA.
//
// Every notice is marked so that it can never start a loop: the envelope
// sender is null (RFC 5321 4.5.5), the message carries Auto-Submitted:
// auto-generated (RFC 3834 5) and the header X-Avstation-Notice, which the
// milter honours for mail from a local client by neither scanning it nor
// notifying about it.
//
// Notifying senders is usually a bad idea: most infected mail comes with a
// forged return address, so the notice goes to an innocent party or nowhere,
// and it harms the reputation of the list server (L-Soft, "How can I get
// information about messages that were blocked for containing a virus?").
// The default sender template therefore blames no one, and the policy leaves
// sender notices off unless it is told otherwise.
package notify

// NoticeHeader marks mail that avstation itself generated. Its value says
// what the mail is: NoticeNotification or NoticeQuarantine.
const NoticeHeader = "X-Avstation-Notice"

// Values of NoticeHeader.
const (
	NoticeNotification = "notification" // a notice rendered from a Template
	NoticeQuarantine   = "quarantine"   // a quarantine report carrying the stopped message
)
