package notify

import (
	"strings"
	"time"

	"github.com/avstation/avstation/placeholder"
)

// Template is the text of one kind of notice. Subject and Body may use these
// placeholders, matched without regard to case, as IceWarp's %%VirusName%%:
//
//	%%VirusName%%   the threat the engine named; "???" when it gave none
//	%%FileName%%    the file it was found in; "(none)" for the message text
//	%%List%%        the mailing lists the message was sent to
//	%%Sender%%      the envelope sender; "<>" for the null sender
//	%%Recipients%%  the envelope recipients
//	%%QueueID%%     the MTA's queue id
//	%%JobID%%       the scan job id
//	%%Date%%        when the message was stopped (RFC 5322 date)
//	%%Outcome%%     the outcome: "infected", "encrypted", "banned-name", …
//	%%Reason%%      a sentence saying why the message was stopped
//	%%Action%%      a sentence saying what was done with it
//
// A placeholder not in this list is left as it is. Values are inserted once
// and never expanded again, and control characters in them (CR, LF, …) become
// spaces, so a forged file name cannot add a header or fake a paragraph.
type Template struct {
	Subject string
	Body    string
}

// Event is what happened to one message, the values for the placeholders.
type Event struct {
	Threat     string
	FileName   string
	Lists      []string
	Sender     string
	Recipients []string
	QueueID    string
	JobID      string
	Outcome    string
	Action     string // the rule's action: reject, tempfail, discard, strip, tag, accept
	Time       time.Time
}

// Render fills in the placeholders. The subject is one line: any line break
// in the template's subject becomes a space as well.
func (t Template) Render(e Event) (subject, body string) {
	vals := e.values()
	subject = oneLine(placeholder.Expand(t.Subject, vals))
	body = placeholder.Expand(t.Body, vals)
	return subject, body
}

// values maps lower-case placeholder names to their sanitised values.
func (e Event) values() map[string]string {
	threat := e.Threat
	if threat == "" {
		threat = "???" // as LISTSERV's activity log shows an unnamed virus
	}
	file := e.FileName
	if file == "" {
		file = "(none)"
	}
	sender := e.Sender
	if sender == "" {
		sender = "<>"
	}
	date := ""
	if !e.Time.IsZero() {
		date = e.Time.Format(time.RFC1123Z)
	}
	v := map[string]string{
		"virusname":  threat,
		"filename":   file,
		"list":       strings.Join(e.Lists, ", "),
		"sender":     sender,
		"recipients": strings.Join(e.Recipients, ", "),
		"queueid":    e.QueueID,
		"jobid":      e.JobID,
		"date":       date,
		"outcome":    e.Outcome,
		"reason":     Reason(e.Outcome, e.Threat),
		"action":     Done(e.Action),
	}
	for k, s := range v {
		v[k] = oneLine(s)
	}
	return v
}

// Reason says in a sentence why a message with this outcome was stopped,
// without suggesting that the sender did anything wrong. Every outcome has
// its own.
func Reason(outcome, threat string) string {
	switch outcome {
	case "infected":
		if threat == "" {
			return "The virus scanner reported a threat it did not name."
		}
		return "The virus scanner reported " + threat + "."
	case "encrypted":
		return "It contains encrypted or password-protected content that could not be checked for viruses."
	case "banned-name":
		return "It has an attachment of a type that is not accepted here (an extension filter blocks it)."
	case "limit-exceeded":
		return "It is too large or too deeply nested to be checked for viruses completely."
	case "unscannable":
		return "Its structure could not be read completely, so it could not be checked for viruses."
	case "oversize":
		return "It is larger than the size up to which messages are checked for viruses, so it was not checked."
	case "station-failure":
		return "The virus scanner could not be reached or failed while checking it."
	case "":
		return "It could not be checked for viruses."
	}
	return "The virus check ended with the outcome \"" + outcome + "\"."
}

// Done says in a sentence what was done with the message.
func Done(action string) string {
	switch action {
	case "reject":
		return "It was refused, and the sending server was told why."
	case "tempfail":
		return "It was refused for now; the sending server will try again later."
	case "discard":
		return "It was accepted and then discarded: nobody received it."
	case "strip":
		return "It was delivered with the offending attachment removed."
	case "tag", "accept":
		return "It was delivered, marked with an X-Virus-Status header that says what was found."
	}
	return "It was handled as the anti-virus policy says."
}

// oneLine turns control characters, line breaks included, into spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return ' '
		}
		return r
	}, s)
}

// DefaultTemplates are the notices used when the configuration has none of
// its own, by whom they go to: "admin" (the server's administrator), "owner"
// (the list owners), "recipient" and "sender".
func DefaultTemplates() map[string]Template {
	details := `
Outcome:    %%Outcome%%
Threat:     %%VirusName%%
File:       %%FileName%%
List:       %%List%%
Sender:     %%Sender%%
Recipients: %%Recipients%%
Date:       %%Date%%
Queue ID:   %%QueueID%%
Job ID:     %%JobID%%
`
	return map[string]Template{
		"admin": {
			Subject: "Virus alert: %%Outcome%% message from %%Sender%% (%%VirusName%%)",
			Body: `A message did not pass the anti-virus check.
%%Reason%%
%%Action%%
` + details + `
If quarantine is enabled, the message is kept there under the job ID above.
`,
		},
		"owner": {
			Subject: "Message to %%List%% held by the virus check",
			Body: `A message posted to %%List%% did not pass the anti-virus check.
%%Reason%%
%%Action%%
` + details + `
The sender address of such mail is often forged, so the person named above
may have nothing to do with it. The server administrator can tell you more
with the job ID above.
`,
		},
		"recipient": {
			Subject: "A message to you was held by the virus check",
			Body: `A message addressed to you did not pass the anti-virus check.
%%Reason%%
%%Action%%

Sender: %%Sender%%
List:   %%List%%
File:   %%FileName%%
Date:   %%Date%%

The sender address of such mail is often forged. If you were expecting
this message, please ask your mail administrator about job %%JobID%%.
`,
		},
		"sender": {
			Subject: "Your message to %%List%% was not delivered",
			Body: `A message sent from your address to %%List%% on %%Date%% did not
pass the anti-virus check.
%%Reason%%
%%Action%%

File: %%FileName%%

This does not necessarily mean that your computer is infected: the sender
address of such mail is often forged, and virus scanners sometimes mistake
a harmless file for a threat. If you did send this message, you may try
again later, when the scanner's signatures have been updated, or send the
file in another form. If the problem persists, please contact the list
owner and quote job %%JobID%%.
`,
		},
	}
}

// UnknownPlaceholders lists the words written as placeholders in s
// (%%Name%%: letters, digits and _) that are none of Template's, so that the
// config can warn about %%Virus%% before a notice goes out with it as is.
func UnknownPlaceholders(s string) []string {
	known := Event{}.values()
	return placeholder.Unknown(s, func(name string) bool {
		_, ok := known[strings.ToLower(name)]
		return ok
	})
}
