package interstitial

import (
	"fmt"
	"html/template"
	"reflect"
	"text/template/parse"
)

// checkFields walks the main template and reports a field that does not
// exist, such as {{.ReturnURL}} for {{.ReturnPath}}. Executing against sample
// data finds such a mistake only on the branches the samples take; this finds
// it on every branch, so that a typo inside {{if eq .Method "PUT"}} is a
// configuration error and not a 500 on the first PUT.
//
// It follows the dot through {{range}} and {{with}} when the pipeline is a
// plain field chain; where the dot's type cannot be known (after a function
// call, inside {{define}}d templates, through variables other than $) it
// checks nothing rather than guess.
func checkFields(t *template.Template) error {
	if t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	c := checker{root: reflect.TypeFor[Data](), tree: t.Tree}
	c.list(t.Tree.Root, c.root)
	return c.err
}

type checker struct {
	root reflect.Type
	tree *parse.Tree
	err  error
}

func (c *checker) list(l *parse.ListNode, dot reflect.Type) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		c.node(n, dot)
	}
}

func (c *checker) node(n parse.Node, dot reflect.Type) {
	if c.err != nil {
		return
	}
	switch n := n.(type) {
	case *parse.ActionNode:
		c.pipe(n.Pipe, dot)
	case *parse.IfNode:
		c.pipe(n.Pipe, dot)
		c.list(n.List, dot)
		c.list(n.ElseList, dot)
	case *parse.RangeNode:
		c.pipe(n.Pipe, dot)
		var elem reflect.Type
		if t := c.pipeType(n.Pipe, dot); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		c.list(n.List, elem)
		c.list(n.ElseList, dot)
	case *parse.WithNode:
		c.pipe(n.Pipe, dot)
		c.list(n.List, c.pipeType(n.Pipe, dot))
		c.list(n.ElseList, dot)
	case *parse.TemplateNode:
		c.pipe(n.Pipe, dot)
	}
}

func (c *checker) pipe(p *parse.PipeNode, dot reflect.Type) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		for _, arg := range cmd.Args {
			c.arg(arg, dot)
		}
	}
}

func (c *checker) arg(n parse.Node, dot reflect.Type) {
	switch n := n.(type) {
	case *parse.FieldNode:
		c.chain(dot, n.Ident, n)
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			c.chain(c.root, n.Ident[1:], n)
		}
	case *parse.ChainNode:
		c.arg(n.Node, dot)
		if t := c.argType(n.Node, dot); t != nil {
			c.chain(t, n.Field, n)
		}
	case *parse.PipeNode:
		c.pipe(n, dot)
	}
}

// chain resolves idents from t and records the first one that does not exist.
// It returns the resulting type, or nil when it is unknown.
func (c *checker) chain(t reflect.Type, idents []string, n parse.Node) reflect.Type {
	for _, id := range idents {
		if t == nil {
			return nil
		}
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			c.fail(n, fmt.Sprintf("%s has no field %q", t, id))
			return nil
		}
		f, ok := t.FieldByName(id)
		if !ok || !f.IsExported() {
			c.fail(n, fmt.Sprintf("no field %q in %s", id, t.Name()))
			return nil
		}
		t = f.Type
	}
	return t
}

func (c *checker) fail(n parse.Node, msg string) {
	if c.err == nil {
		loc, context := n.String(), n.String()
		if c.tree != nil {
			loc, context = c.tree.ErrorContext(n)
		}
		c.err = fmt.Errorf("%s: %s: %s", loc, context, msg)
	}
}

// pipeType is the type of a pipeline made of one plain argument, else nil.
func (c *checker) pipeType(p *parse.PipeNode, dot reflect.Type) reflect.Type {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	return c.argType(p.Cmds[0].Args[0], dot)
}

func (c *checker) argType(n parse.Node, dot reflect.Type) reflect.Type {
	probe := checker{root: c.root} // errors were reported by arg already
	switch n := n.(type) {
	case *parse.DotNode:
		return dot
	case *parse.FieldNode:
		return probe.chain(dot, n.Ident, n)
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			return probe.chain(c.root, n.Ident[1:], n)
		}
	case *parse.ChainNode:
		if t := c.argType(n.Node, dot); t != nil {
			return probe.chain(t, n.Field, n)
		}
	case *parse.PipeNode:
		return c.pipeType(n, dot)
	}
	return nil
}
