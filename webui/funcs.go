package webui

import (
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/models"
)

// icons are drawn inline (an SVG sprite in the layout): no CDN, no icon font.
var icons = map[string]string{
	"home":       `<path d="M3 11l9-8 9 8M5 9v12h14V9"/>`,
	"building":   `<path d="M4 21V4a1 1 0 0 1 1-1h9a1 1 0 0 1 1 1v17M15 9h4a1 1 0 0 1 1 1v11M2 21h20M8 7h3M8 11h3M8 15h3"/>`,
	"user":       `<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-6 8-6s8 2 8 6"/>`,
	"network":    `<circle cx="12" cy="5" r="2"/><circle cx="5" cy="19" r="2"/><circle cx="19" cy="19" r="2"/><path d="M12 7v5M12 12l-6 5M12 12l6 5"/>`,
	"pilot":      `<path d="M2 11c4-5 16-5 20 0l-2 3H4z"/><path d="M5 14h14v2a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2z"/><path d="M8 9.5l4-2 4 2"/>`,
	"tunnel":     `<path d="M3 20V11a9 9 0 0 1 18 0v9"/><path d="M7 20v-8a5 5 0 0 1 10 0v8"/><path d="M2 20h20"/>`,
	"refresh":    `<path d="M20 11a8 8 0 1 0-2.3 5.7"/><path d="M20 4v7h-7"/>`,
	"server":     `<rect x="3" y="3" width="18" height="7" rx="1"/><rect x="3" y="14" width="18" height="7" rx="1"/><path d="M7 6.5h.01M7 17.5h.01"/>`,
	"volume":     `<ellipse cx="12" cy="5" rx="8" ry="3"/><path d="M4 5v14c0 1.7 3.6 3 8 3s8-1.3 8-3V5"/><path d="M4 12c0 1.7 3.6 3 8 3s8-1.3 8-3"/>`,
	"group":      `<path d="M12 3l9 5-9 5-9-5z"/><path d="M3 13l9 5 9-5"/>`,
	"device":     `<rect x="3" y="4" width="18" height="12" rx="1"/><path d="M8 20h8M12 16v4"/>`,
	"menu":       `<path d="M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01"/>`,
	"settings":   `<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1"/>`,
	"operations": `<path d="M3 12h4l3 8 4-16 3 8h4"/>`,
	"edit":       `<path d="M4 20h4L19 9l-4-4L4 16z"/><path d="M14 6l4 4"/>`,
	"properties": `<path d="M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12"/><circle cx="16" cy="6" r="2"/><circle cx="10" cy="12" r="2"/><circle cx="18" cy="18" r="2"/>`,
	"trash":      `<path d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13"/>`,
	"lock":       `<rect x="5" y="11" width="14" height="10" rx="1"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>`,
	"unlock":     `<rect x="5" y="11" width="14" height="10" rx="1"/><path d="M8 11V7a4 4 0 0 1 7.5-2"/>`,
	"alert":      `<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18h.01"/>`,
	"key":        `<circle cx="7" cy="15" r="4"/><path d="M10 12l10-10M16 6l3 3M14 8l2 2"/>`,
	"logout":     `<path d="M15 4h4v16h-4M10 8l-4 4 4 4M6 12h11"/>`,
	"plus":       `<path d="M12 5v14M5 12h14"/>`,
	"publish":    `<path d="M12 16V4M7 9l5-5 5 5M4 20h16"/>`,
	"check":      `<path d="M5 12l5 5 9-10"/>`,
	"external":   `<path d="M14 4h6v6M20 4l-9 9M18 14v6H4V6h6"/>`,
	"account":    `<circle cx="12" cy="12" r="9"/><circle cx="12" cy="10" r="3"/><path d="M6.5 18.5c1.5-2 3.5-3 5.5-3s4 1 5.5 3"/>`,
}

var funcs = template.FuncMap{
	"icon": func(name string) template.HTML {
		return template.HTML(`<svg class="icon" aria-hidden="true" focusable="false"><use href="#i-` + template.HTMLEscapeString(name) + `"/></svg>`)
	},
	"sprite": func() template.HTML {
		var b strings.Builder
		b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" class="sprite" aria-hidden="true">`)
		for _, name := range slices.Sorted(maps.Keys(icons)) {
			b.WriteString(`<symbol id="i-` + name + `" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">` + icons[name] + `</symbol>`)
		}
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	},
	"when":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"superadmin": func(a *models.Actor) bool { return a != nil && a.SuperAdmin() },
	"list":       func(vs ...string) []string { return vs },
	// dict passes several values to a shared template: dict "P" $ "F" .Form
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k] = kv[i+1]
		}
		return m
	},
}
