package runbook

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Reference renders the runbook format as Markdown from the JSON Schema: the top level, spec, a step,
// and each step kind's `with:` settings with their types, defaults and descriptions.
func Reference(reg Registry) (string, error) {
	raw, err := Schema(reg)
	if err != nil {
		return "", err
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	defs, _ := s["$defs"].(map[string]any)
	var b strings.Builder
	b.WriteString("# Runbook reference\n\nGenerated from the runbook JSON Schema (`drydock schema`) by `make docs`; every field's text is its Go doc comment.\n\n")
	section := func(title, note string, def map[string]any) {
		fmt.Fprintf(&b, "## %s\n\n", title)
		if d, _ := def["description"].(string); d != "" {
			fmt.Fprintf(&b, "%s\n\n", d)
		}
		if note != "" {
			fmt.Fprintf(&b, "%s\n\n", note)
		}
		props, _ := def["properties"].(map[string]any)
		if len(props) == 0 {
			b.WriteString("No settings.\n\n")
			return
		}
		req := map[string]bool{}
		if r, ok := def["required"].([]any); ok {
			for _, x := range r {
				req[fmt.Sprint(x)] = true
			}
		}
		b.WriteString("| field | type | description |\n|---|---|---|\n")
		for _, name := range orderedKeys(raw, title, props) {
			p, _ := props[name].(map[string]any)
			typ := typeOf(p)
			if req[name] {
				typ += ", required"
			}
			desc, _ := p["description"].(string)
			if e, ok := p["enum"].([]any); ok {
				var vs []string
				for _, v := range e {
					vs = append(vs, fmt.Sprintf("`%v`", v))
				}
				desc += " One of " + strings.Join(vs, ", ") + "."
			}
			if d, ok := p["default"]; ok {
				desc += fmt.Sprintf(" Default `%v`.", d)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, typ, strings.NewReplacer("|", `\|`, "\n", " ").Replace(strings.TrimSpace(desc)))
		}
		b.WriteString("\n")
	}
	section("Runbook", "The top level of the file.", s)
	for _, name := range []string{"Metadata", "Spec", "Defaults", "StateSpec", "StepSpec"} {
		if d, ok := defs[name].(map[string]any); ok {
			section(name, "", d)
		}
	}
	b.WriteString("# Step kinds\n\n")
	for _, name := range reg.Names() {
		if d, ok := defs["with."+name].(map[string]any); ok {
			section("`"+name+"`", "Settings under `with:`.", d)
		}
	}
	var nested []string
	for name := range defs {
		if !strings.HasPrefix(name, "with.") && !strings.Contains("Metadata Spec Defaults StateSpec StepSpec Duration IntOrPercent", name) {
			nested = append(nested, name)
		}
	}
	sort.Strings(nested)
	if len(nested) > 0 {
		b.WriteString("# Nested settings\n\n")
		for _, name := range nested {
			section(name, "", defs[name].(map[string]any))
		}
	}
	b.WriteString("# Values\n\n- **Duration**: a Go duration such as `90s`, `5m`, `1h30m`.\n- **IntOrPercent**: a count of at least 1 (`2`) or a percentage from 1% to 100% (`25%`).\n")
	return b.String(), nil
}

// orderedKeys keeps the schema's field order (the Go struct's) by finding each key in the raw JSON.
func orderedKeys(raw []byte, _ string, props map[string]any) []string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		return strings.Index(string(raw), `"`+keys[i]+`": {`) < strings.Index(string(raw), `"`+keys[j]+`": {`)
	})
	return keys
}

func typeOf(p map[string]any) string {
	if ref, ok := p["$ref"].(string); ok {
		name := ref[strings.LastIndex(ref, "/")+1:]
		return "[" + name + "](#" + strings.ToLower(name) + ")"
	}
	t, _ := p["type"].(string)
	if t == "array" {
		if it, ok := p["items"].(map[string]any); ok {
			return "list of " + typeOf(it)
		}
	}
	if t == "" {
		if _, ok := p["oneOf"]; ok {
			return "one of several"
		}
		return "any"
	}
	return t
}
