package runbook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/invopop/jsonschema"
	orderedmap "github.com/pb33f/ordered-map/v2"
	validator "github.com/santhosh-tekuri/jsonschema/v6"
)

//go:generate sh -c "cd .. && go run ./internal/cmd/gencomments -o runbook/zz_generated.comments.go"

// SchemaID names the runbook schema.
const SchemaID = "https://drydock.dev/schemas/runbook-v1alpha1.json"

// Schema generates the JSON Schema of a runbook from the Go types: the runbook types here and, for
// `with:`, the settings type of every registered step kind (chosen by `type:`).
func Schema(reg Registry) ([]byte, error) {
	r := &jsonschema.Reflector{
		DoNotReference:            false,
		ExpandedStruct:            true,
		AllowAdditionalProperties: false,
		Anonymous:                 true,
		CommentMap:                fieldComments,
	}
	root := r.Reflect(&Runbook{})
	root.ID = SchemaID
	root.Title = "drydock runbook (" + APIVersion + ")"
	if root.Definitions == nil {
		root.Definitions = jsonschema.Definitions{}
	}

	step := root.Definitions["StepSpec"]
	if step == nil {
		return nil, fmt.Errorf("runbook schema: no StepSpec definition")
	}
	typeProp, _ := step.Properties.Get("type")
	withProp, _ := step.Properties.Get("with")
	typeProp.Enum = nil
	typeProp.Description = "the step kind; `with` holds that kind's settings"
	withProp.Type = "object"
	withProp.Description = "the settings of the step kind named by `type`"
	for _, name := range reg.Names() {
		kind, _ := reg.Lookup(name)
		typeProp.Enum = append(typeProp.Enum, name)

		kr := &jsonschema.Reflector{ExpandedStruct: true, AllowAdditionalProperties: false, Anonymous: true, DoNotReference: false, CommentMap: fieldComments}
		ks := kr.ReflectFromType(reflect.TypeOf(kind.New()).Elem())
		for defName, def := range ks.Definitions {
			if _, exists := root.Definitions[defName]; !exists {
				root.Definitions[defName] = def
			}
		}
		ks.Definitions = nil
		ks.Version = ""
		ks.ID = ""
		ks.Description = kind.Description
		defName := "with." + name
		root.Definitions[defName] = ks

		cond := &jsonschema.Schema{
			If: &jsonschema.Schema{
				Properties: props("type", &jsonschema.Schema{Const: name}),
				Required:   []string{"type"},
			},
			Then: &jsonschema.Schema{
				Properties: props("with", &jsonschema.Schema{Ref: "#/$defs/" + defName}),
			},
		}
		step.AllOf = append(step.AllOf, cond)
	}

	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func props(name string, s *jsonschema.Schema) *orderedmap.OrderedMap[string, *jsonschema.Schema] {
	p := jsonschema.NewProperties()
	p.Set(name, s)
	return p
}

var compiled sync.Map // *Registry identity is not stable; key by the schema text

// compileSchema returns the compiled validator for reg's schema.
func compileSchema(reg Registry) (*validator.Schema, error) {
	text, err := Schema(reg)
	if err != nil {
		return nil, err
	}
	if s, ok := compiled.Load(string(text)); ok {
		return s.(*validator.Schema), nil
	}
	doc, err := validator.UnmarshalJSON(bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	c := validator.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		return nil, fmt.Errorf("runbook schema: %w", err)
	}
	compiled.Store(string(text), s)
	indexSchemaProperties(text)
	return s, nil
}
