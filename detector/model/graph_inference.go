package model

// Inference for the graph-only network types (ConvAutoencoder, LSTMAutoencoder): one
// fixed-batch Gorgonia graph per network sharing the training weights, and the layout
// of a batch in it.

import (
	"fmt"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// inferBatch is the batch size of inference graphs; the last batch is padded.
const inferBatch = 64

// weightNodes adds n's weights to g, sharing their backing arrays, so every graph of a
// network reads and writes the same weights.
func weightNodes(g *G.ExprGraph, n *Network) []*G.Node {
	var nodes []*G.Node
	for _, p := range n.Params {
		v := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
		nodes = append(nodes, G.NodeFromAny(g, v, G.WithName(p.Name)))
	}
	return nodes
}

// graphInference is a fixed-batch inference graph; the mutex serialises its machine.
type graphInference struct {
	mu  sync.Mutex
	vm  G.VM
	xT  *tensor.Dense
	out G.Value
}

// prepare builds what inference needs beyond the weights: the graph of a convolutional
// or recurrent network. New and FromParams call it, so inference itself cannot fail.
func (n *Network) prepare() error {
	if n.Spec.Type != ConvAutoencoder && n.Spec.Type != LSTMAutoencoder {
		return nil
	}
	ci, err := newGraphInference(n)
	if err != nil {
		return fmt.Errorf("building the inference graph: %w", err)
	}
	n.infer = ci
	return nil
}

// graphForward runs the inference graph over rows, padding the last batch.
func (n *Network) graphForward(x []float32, rows int) []float32 {
	ci := n.infer
	ci.mu.Lock()
	defer ci.mu.Unlock()
	d := n.Spec.Inputs
	out := make([]float32, rows*d)
	buf := ci.xT.Data().([]float32)
	for start := 0; start < rows; start += inferBatch {
		m := min(inferBatch, rows-start)
		n.Spec.toGraph(buf, x[start*d:(start+m)*d])
		clear(buf[m*d:]) // pad the last batch
		if err := ci.vm.RunAll(); err != nil {
			// Every shape is fixed when the graph is built; a failure here is a bug.
			panic(fmt.Sprintf("running the inference graph: %v", err))
		}
		n.Spec.fromGraph(out[start*d:(start+m)*d], ci.out.Data().([]float32)[:m*d])
		ci.vm.Reset()
	}
	return out
}

func newGraphInference(n *Network) (*graphInference, error) {
	g := G.NewGraph()
	ci := &graphInference{xT: tensor.New(tensor.WithShape(inputShape(n.Spec, inferBatch)...), tensor.Of(tensor.Float32))}
	x := G.NodeFromAny(g, ci.xT, G.WithName("x"))
	out, err := buildGraph(n.Spec, x, weightNodes(g, n), nil)
	if err != nil {
		return nil, err
	}
	G.Read(out, &ci.out)
	ci.vm = G.NewTapeMachine(g)
	return ci, nil
}

// inputShape is the shape of a batch of inputs in a graph.
func inputShape(s Spec, batch int) []int {
	switch {
	case s.featureMajor():
		return []int{batch, s.Features(), s.Window, 1}
	case s.Type == ConvAutoencoder:
		return []int{batch, 1, s.ImageRows, s.ImageCols}
	}
	return []int{batch, s.Inputs}
}

// featureMajor reports a graph that takes windows feature by feature.
func (s Spec) featureMajor() bool { return s.Type == ConvAutoencoder && s.Window > 0 }

// toGraph copies rows of x into a graph's input layout in dst: as they are, or each
// window from time-major to feature-major.
func (s Spec) toGraph(dst, x []float32) {
	if !s.featureMajor() {
		copy(dst, x)
		return
	}
	transposeBlocks(dst, x, s.Window, s.Features())
}

// fromGraph is toGraph's inverse.
func (s Spec) fromGraph(dst, g []float32) {
	if !s.featureMajor() {
		copy(dst, g)
		return
	}
	transposeBlocks(dst, g, s.Features(), s.Window)
}

// transposeBlocks writes each consecutive rows x cols block of src transposed into dst.
func transposeBlocks(dst, src []float32, rows, cols int) {
	for b := 0; b+rows*cols <= len(src); b += rows * cols {
		for r := range rows {
			for c := range cols {
				dst[b+c*rows+r] = src[b+r*cols+c]
			}
		}
	}
}

// buildGraph builds the graph-only network types. Gorgonia's G.Must panics on a shape
// error; the shapes are checked before, and a panic still becomes an error here.
func buildGraph(s Spec, x *G.Node, w []*G.Node, drop dropFunc) (out *G.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("building the %s graph: %v", s.Type, p)
		}
	}()
	if s.Type == LSTMAutoencoder {
		return lstmGraph(s, x, w)
	}
	return convGraph(s, x, w, drop)
}
