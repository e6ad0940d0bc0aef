package main

import (
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// phase is a stretch of a run: a step, a group of a node step, or the whole run.
type phase struct {
	name     string
	from, to time.Time
}

// timeline collects a run's phases from its events.
type timeline struct {
	steps  []phase
	step   map[string]int     // step name → index in steps
	groups map[string][]phase // step name → its groups, in the order they began
	group  map[string]int     // step/group → index in groups[step]
	nodeOf map[string]string  // node → its group, as an event named it
}

// phases are a run's steps in the order they started (first start to last end, across attempts and
// sessions), each followed by its node groups when its nodes belong to two or more (a group from the
// first time one of its nodes moved to the last; a node's group is named by the step's first event of
// it), then the whole run.
func phases(events []runbook.Event) []phase {
	t := &timeline{step: map[string]int{}, groups: map[string][]phase{}, group: map[string]int{}, nodeOf: map[string]string{}}
	for _, e := range events {
		at := runbook.EventTime(e)
		switch ev := e.(type) {
		case *runbook.StepStarted:
			if _, ok := t.step[ev.Step]; !ok {
				t.step[ev.Step] = len(t.steps)
				t.steps = append(t.steps, phase{name: ev.Step, from: at, to: at})
			}
		case *runbook.StepFinished:
			t.end(ev.Step, at)
		case *runbook.StepFailed:
			t.end(ev.Step, at)
		case *runbook.NodeChanged:
			if ev.Group != "" {
				t.nodeOf[ev.Node] = ev.Group
			}
			if g := t.nodeOf[ev.Node]; g != "" && ev.State != runbook.NodeWaiting && ev.State != runbook.NodeSkipped {
				t.node(ev.Step, g, at)
			}
		}
	}
	var out []phase
	for _, s := range t.steps {
		out = append(out, s)
		if g := t.groups[s.name]; len(g) > 1 {
			out = append(out, g...)
		}
	}
	if len(events) > 0 {
		out = append(out, phase{name: "whole run", from: runbook.EventTime(events[0]), to: runbook.EventTime(events[len(events)-1])})
	}
	return out
}

func (t *timeline) end(step string, at time.Time) {
	if i, ok := t.step[step]; ok {
		t.steps[i].to = at
	}
}

func (t *timeline) node(step, group string, at time.Time) {
	k := step + "/" + group
	i, ok := t.group[k]
	if !ok {
		i = len(t.groups[step])
		t.group[k] = i
		t.groups[step] = append(t.groups[step], phase{name: "  group " + group, from: at})
	}
	t.groups[step][i].to = at
}
