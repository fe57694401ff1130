package report

import (
	"fmt"
	"html/template"
	"io"
)

// HTML writes the report as one self-contained HTML file: styles inline,
// charts as inline SVG, no script, no external asset, laid out to print
// (to paper or PDF) as it shows.
func HTML(w io.Writer, r *Report) error {
	v := htmlView{Report: r, Sections: []trafficView{
		{"denied", "Denied traffic", deniedIntro, "No rule denied traffic in the period.", r.Denied, colourDenied},
		{"would-deny", "Would be denied (audit mode)", wouldDenyIntro, "No rule is in audit mode.", r.WouldDeny, colourDenied},
		{"allowed", "Allowed traffic", allowedIntro, "No rule allowed traffic in the period.", r.Allowed, colourBar},
	}}
	if len(r.Retired) > 0 {
		v.Sections = append(v.Sections, trafficView{"retired", "Rules no longer in the running ruleset", retiredIntro, "", r.Retired, colourBar})
	}
	if err := htmlTemplate.Execute(w, v); err != nil {
		return fmt.Errorf("render the HTML report: %w", err)
	}
	return nil
}

type htmlView struct {
	*Report
	Sections []trafficView
}

// trafficView is one traffic section of the HTML form.
type trafficView struct {
	ID, Title, Intro, None string
	Rules                  []RuleTraffic
	Colour                 string
}

var htmlFuncs = template.FuncMap{
	"stamp": stamp, "short": short, "count": count, "bytes": bytesText, "percent": percent, "duration": duration,
	"period": periodText, "journalVerdict": journalVerdict, "integrityJournal": integrityJournal,
	"directionTitle": directionTitle, "who": who, "hashes": hashes, "role": ruleRole, "totals": trafficTotals,
	"sample": sampleText, "activeDays": activeDays, "surge": surgeMark, "outage": outageText, "peerName": peerName,
	"dayTop": func() int { return dayTop }, "sources": sourcesText, "ports": portsText,
	"trafficChart": trafficChart, "timelineChart": timelineChart,
	"exposureIntro": func() string { return exposureIntro }, "tunnelsIntro": func() string { return tunnelsIntro },
	"noIntegrity": func() string { return noIntegrityEvents },
	"css":         func() template.CSS { return template.CSS(htmlStyle) },
}

// htmlStyle prints: no fixed heights, charts scale to the width, rows and
// charts are not split across pages, colours are kept.
const htmlStyle = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.3em}h2{border-bottom:2px solid #dee2e6;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.5em 0 1em}
th,td{border:1px solid #dee2e6;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f1f3f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.identity th{width:12em}
.bad{color:#c92a2a;font-weight:bold}.good{color:#2b8a3e}
tr.surge td{background:#fff4e6}li.audit{color:#5f3dc4}li.deny{color:#862e9c}li.default{font-weight:bold}
ol li{margin:.2em 0}
svg.chart{display:block;width:100%;height:auto;margin:.3em 0 .8em}
.rule{break-inside:avoid;page-break-inside:avoid}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;padding:0;font-size:9.5pt}h2{break-after:avoid;page-break-after:avoid}
thead{display:table-header-group}tr,svg.chart{break-inside:avoid;page-break-inside:avoid}}
`

var htmlTemplate = template.Must(template.New("report").Funcs(htmlFuncs).Parse(htmlSource))

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edgefw report, schema {{.SchemaVersion}}">
<title>Network security report: {{.Identity.Host}}, {{.Identity.FirstDay}} to {{.Identity.LastDay}}</title>
<style>{{css}}</style>
</head>
<body>
<header>
<h1>Network security report: {{.Identity.Host}}</h1>
<table class="identity">
<tr><th>Host</th><td>{{.Identity.Host}}</td></tr>
<tr><th>edgefwd version</th><td>{{.Identity.Version}}</td></tr>
<tr><th>Period</th><td>{{period .Identity}}</td></tr>
<tr><th>Generated at</th><td>{{stamp .Identity.GeneratedAt}}</td></tr>
<tr><th>Running policy</th><td>{{.Identity.Policy.Path}} (SHA-256 {{short .Identity.Policy.Hash}})</td></tr>
<tr><th>Journal</th><td class="{{if .Identity.Journal.Verified}}good{{else}}bad{{end}}">{{journalVerdict .Identity.Journal}}</td></tr>
{{- with .Identity.Journal}}{{if .Head}}
<tr><th>Journal head</th><td>entry {{.LastSeq}}, SHA-256 <code>{{.Head}}</code></td></tr>{{end}}{{end}}
</table>
</header>

<section id="exposure">
<h2>Exposure</h2>
<p>{{exposureIntro}}</p>
{{- range .Exposure.Directions}}
<h3>{{directionTitle .Direction}}</h3>
<ol>
{{- range .Rules}}
<li class="{{if eq .Mode "audit"}}audit{{else if ne .Action "accept"}}deny{{end}}">{{.Text}}</li>
{{- end}}
<li class="default">{{.DefaultText}}</li>
</ol>
{{- end}}
</section>

<section id="changes">
<h2>Changes</h2>
{{- if .Changes}}
<table>
<thead><tr><th>Time (UTC)</th><th>Entry</th><th>Event</th><th>Who</th><th>Trigger</th><th>Policy before → after</th><th>What</th></tr></thead>
<tbody>
{{- range .Changes}}
<tr><td>{{stamp .Time}}</td><td class="num">{{.Seq}}</td><td>{{.Kind}}</td><td>{{who .}}</td><td>{{.Trigger}}</td><td><code>{{hashes .}}</code></td><td>{{.Summary}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>No changes in the period.</p>
{{- end}}
</section>

<section id="integrity">
<h2>Integrity</h2>
<p class="{{if .Identity.Journal.Verified}}good{{else}}bad{{end}}">{{integrityJournal .Identity.Journal}}</p>
{{- if .Integrity}}
<table>
<thead><tr><th>Time (UTC)</th><th>Entry</th><th>Event</th><th>What</th></tr></thead>
<tbody>
{{- range .Integrity}}
<tr><td>{{stamp .Time}}</td><td class="num">{{.Seq}}</td><td>{{.Kind}}</td><td>{{.Summary}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>{{noIntegrity}}</p>
{{- end}}
</section>
{{range .Sections}}
<section id="{{.ID}}">
<h2>{{.Title}}</h2>
<p>{{.Intro}}</p>
{{- if not .Rules}}
<p>{{.None}}</p>
{{- end}}
{{- $colour := .Colour}}
{{- range .Rules}}
<div class="rule">
<h3>{{.Rule}}{{role .}}</h3>
<p>{{totals .}}</p>
{{- if .Sampled}}
<p>{{sample .}}</p>
{{- end}}
{{- if .Packets}}
{{trafficChart . $.Identity.FirstDay $.Identity.LastDay $colour}}
{{- end}}
</div>
{{- with activeDays .Days}}
<table>
<thead><tr><th>Day</th><th>Packets</th><th>Bytes</th><th>Surge</th><th>Top sources (logged)</th><th>Top ports (logged)</th></tr></thead>
<tbody>
{{- range .}}
<tr{{if .Surge}} class="surge"{{end}}><td>{{.Date}}</td><td class="num">{{count .Packets}}</td><td class="num">{{bytes .Bytes}}</td><td>{{surge .Surge}}</td><td>{{sources .TopSources dayTop}}</td><td>{{ports .TopPorts dayTop}}</td></tr>
{{- end}}
</tbody>
</table>
{{- end}}
{{- end}}
</section>
{{end}}
<section id="tunnels">
<h2>Tunnel availability</h2>
<p>{{tunnelsIntro}}</p>
{{- if .Tunnels}}
<p class="legend">Legend:<span style="background:#2b8a3e"></span>up<span style="background:#e03131"></span>down<span style="background:#ced4da"></span>unknown</p>
<table>
<thead><tr><th>Tunnel</th><th>Peer</th><th>Up</th><th>Down</th><th>Unknown</th><th>Outages</th><th>Longest outage</th><th>At the start</th></tr></thead>
<tbody>
{{- range .Tunnels}}
<tr><td>{{.Interface}}</td><td>{{peerName .}}</td><td class="num">{{percent .ShareUp}}</td><td class="num">{{duration .DownSeconds}}</td><td class="num">{{duration .UnknownSeconds}}</td><td class="num">{{.Outages}}</td><td>{{outage .LongestOutage}}</td><td>{{.StateAtStart}}</td></tr>
{{- end}}
</tbody>
</table>
{{- range .Tunnels}}
<div class="rule"><h3>{{.Interface}} / {{.Peer}}</h3>
{{timelineChart . $.Identity.From $.Identity.To}}</div>
{{- end}}
{{- else}}
<p>No tunnel peers.</p>
{{- end}}
</section>
</body>
</html>
`
