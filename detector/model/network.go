// Package model holds kadet's neural networks: their shapes, weights, training graphs
// (Gorgonia) and inference. Gorgonia stays inside this package; callers see float32
// slices in and out.
package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Types of network, as in the Detector API.
const (
	Autoencoder     = "Autoencoder"
	MLPClassifier   = "MLPClassifier"
	ConvAutoencoder = "ConvAutoencoder"
	LSTMAutoencoder = "LSTMAutoencoder"
)

// Resampling of a ConvAutoencoder, as in the Detector API.
const (
	Pooling = "Pooling"
	Strided = "Strided"
)

// Activations, as in the Detector API.
const (
	ReLU      = "ReLU"
	LeakyReLU = "LeakyReLU"
	Tanh      = "Tanh"
	Sigmoid   = "Sigmoid"
)

// leakySlope is LeakyReLU's slope for negative inputs.
const leakySlope = 0.01

// Spec is a network's architecture.
type Spec struct {
	Type       string `json:"type"`
	Inputs     int    `json:"inputs"`
	Hidden     []int  `json:"hidden,omitempty"`
	Latent     int    `json:"latent,omitempty"`
	Activation string `json:"activation"`
	// Convolutional models: channels per conv block, the kernel size (k x k over an
	// image, k rows over a window), and the input images' height and width (Inputs =
	// ImageRows * ImageCols; none over windows).
	Channels  []int `json:"channels,omitempty"`
	Kernel    int   `json:"kernel,omitempty"`
	ImageRows int   `json:"imageRows,omitempty"`
	ImageCols int   `json:"imageCols,omitempty"`
	// Sequence models: rows per window; Inputs = Window * features per row.
	Window int `json:"window,omitempty"`
	// Resampling is how a ConvAutoencoder shrinks and grows its input: Pooling (the
	// default: max pooling, a dense latent layer, upsampling) or Strided (stride-2
	// convolutions down, stride-2 transposed convolutions up, no dense layer).
	Resampling string `json:"resampling,omitempty"`
	// Dropout is the share of a ConvAutoencoder's activations zeroed at each training
	// step after every block but the last of the encoder and of the decoder; inference
	// keeps them all.
	Dropout float64 `json:"dropout,omitempty"`
	// OutputChannels 1 ends a ConvAutoencoder over windows in a single channel that is
	// compared with every feature, as the published SKAB Conv-AE does (its loss
	// broadcasts one channel against all); 0 is one channel per feature.
	OutputChannels int `json:"outputChannels,omitempty"`
}

// Features is the number of features of one row: Inputs, or Inputs / Window for a
// sequence model, whose input is a window of rows.
func (s Spec) Features() int {
	if s.Sequence() {
		return s.Inputs / s.Window
	}
	return s.Inputs
}

// Sequence reports a model that reads windows of consecutive rows: an LSTMAutoencoder,
// or a ConvAutoencoder given a window.
func (s Spec) Sequence() bool {
	return (s.Type == LSTMAutoencoder || s.Type == ConvAutoencoder) && s.Window > 0
}

// maxParams bounds a network's size (about 1 GiB of float32 weights), so a corrupt
// model file cannot make the loader allocate without limit.
const maxParams = 1 << 28

// Widths lists every layer's width from input to output: an autoencoder mirrors its
// encoder (inputs, hidden..., latent, reversed hidden..., inputs); a classifier ends in
// one logit.
func (s Spec) Widths() ([]int, error) {
	if s.Inputs <= 0 {
		return nil, fmt.Errorf("model has %d inputs", s.Inputs)
	}
	for _, h := range s.Hidden {
		if h <= 0 {
			return nil, fmt.Errorf("hidden layer width %d", h)
		}
	}
	switch s.Activation {
	case ReLU, LeakyReLU, Tanh, Sigmoid:
	default:
		return nil, fmt.Errorf("unknown activation %q", s.Activation)
	}
	w := []int{s.Inputs}
	w = append(w, s.Hidden...)
	switch s.Type {
	case Autoencoder:
		if s.Latent <= 0 {
			return nil, fmt.Errorf("autoencoder latent size %d", s.Latent)
		}
		w = append(w, s.Latent)
		for i := len(s.Hidden) - 1; i >= 0; i-- {
			w = append(w, s.Hidden[i])
		}
		w = append(w, s.Inputs)
	case MLPClassifier:
		w = append(w, 1)
	default:
		return nil, fmt.Errorf("model type %q is not a dense network", s.Type)
	}
	total := 0
	for l := 0; l+1 < len(w); l++ {
		if w[l] > maxParams || w[l+1] > maxParams || w[l]*w[l+1] > maxParams-total {
			return nil, fmt.Errorf("model is too large: more than %d weights", maxParams)
		}
		total += w[l]*w[l+1] + w[l+1]
	}
	return w, nil
}

// shapes lists the weight tensors' names and shapes for widths.
func shapes(widths []int) []Param {
	var ps []Param
	for l := 0; l+1 < len(widths); l++ {
		ps = append(ps,
			Param{Name: fmt.Sprintf("W%d", l), Shape: []int{widths[l], widths[l+1]}},
			Param{Name: fmt.Sprintf("b%d", l), Shape: []int{1, widths[l+1]}})
	}
	return ps
}

// Param is one weight tensor.
type Param struct {
	Name  string    `json:"name"`
	Shape []int     `json:"shape"`
	Data  []float32 `json:"-"`
}

// Network is a dense network: a weight matrix and bias per layer.
type Network struct {
	Spec   Spec
	Params []Param // W0, b0, W1, b1, ...
	widths []int
	// infer is the inference graph of a convolutional network, built on first use.
	infer *graphInference
	// scratch pools hidden-layer buffers for Forward (*[][]float32).
	scratch sync.Pool
}

// New makes a network with Glorot-uniform weights drawn from seed, so the same seed
// gives the same initial weights.
func New(spec Spec, seed int64) (*Network, error) {
	params, widths, err := spec.params()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b61646574)) // "kadet"
	n := &Network{Spec: spec, widths: widths, Params: params}
	for i := range n.Params {
		p := &n.Params[i]
		p.Data = make([]float32, size(p.Shape))
		if i%2 == 1 {
			continue // biases start at zero
		}
		// Glorot uniform; for a conv kernel [out, in, k, k] the fans are in*k*k, out*k*k.
		fanOut, fanIn := p.Shape[1], p.Shape[0]
		if len(p.Shape) == 4 {
			fanIn, fanOut = p.Shape[1]*p.Shape[2]*p.Shape[3], p.Shape[0]*p.Shape[2]*p.Shape[3]
		}
		limit := math.Sqrt(6 / float64(fanIn+fanOut))
		for k := range p.Data {
			p.Data[k] = float32((rng.Float64()*2 - 1) * limit)
		}
	}
	return n, n.prepare()
}

func size(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// params lists the weight tensors a spec needs, without their data, and the layer
// widths of a dense network.
func (s Spec) params() ([]Param, []int, error) {
	if s.Type != ConvAutoencoder && (s.Resampling != "" || s.Dropout != 0 || s.OutputChannels != 0) {
		return nil, nil, fmt.Errorf("resampling, dropout and output channels apply only to a %s", ConvAutoencoder)
	}
	switch s.Type {
	case ConvAutoencoder:
		ps, err := s.convParams()
		return ps, nil, err
	case LSTMAutoencoder:
		ps, err := s.lstmParams()
		return ps, nil, err
	}
	widths, err := s.Widths()
	if err != nil {
		return nil, nil, err
	}
	return shapes(widths), widths, nil
}

// FromParams rebuilds a network from stored weights, checking every shape.
func FromParams(spec Spec, params []Param) (*Network, error) {
	want, widths, err := spec.params()
	if err != nil {
		return nil, err
	}
	if len(params) != len(want) {
		return nil, fmt.Errorf("model has %d weight tensors; its spec needs %d", len(params), len(want))
	}
	for i, p := range params {
		w := want[i]
		if p.Name != w.Name || !slices.Equal(p.Shape, w.Shape) || len(p.Data) != size(w.Shape) {
			return nil, fmt.Errorf("weight %d is %s%v with %d values; the spec needs %s%v", i, p.Name, p.Shape, len(p.Data), w.Name, w.Shape)
		}
		for _, v := range p.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("weight %s holds a non-finite value", p.Name)
			}
		}
	}
	n := &Network{Spec: spec, widths: widths, Params: params}
	return n, n.prepare()
}

// Snapshot deep-copies the weights, for keeping the best epoch during training.
func (n *Network) Snapshot() []Param {
	ps := make([]Param, len(n.Params))
	for i, p := range n.Params {
		ps[i] = Param{Name: p.Name, Shape: slices.Clone(p.Shape), Data: slices.Clone(p.Data)}
	}
	return ps
}

// Restore copies weights taken by Snapshot back into n, in place: the graphs that share
// n's weights see them.
func (n *Network) Restore(ps []Param) {
	for i := range n.Params {
		copy(n.Params[i].Data, ps[i].Data)
	}
}

// Forward computes the network's output for rows of x. Dense inference runs on BLAS
// directly rather than a Gorgonia graph: a graph's batch size is fixed, and scoring
// takes any. Convolutional inference runs a graph, padding the last batch. The result
// is the caller's; hidden layers live in pooled buffers.
func (n *Network) Forward(x []float32, rows int) []float32 {
	return n.forward(x, rows, nil)
}

// forward is Forward writing the output layer into sp's buffers too when sp is not
// nil: the caller then uses the output before returning sp to the pool.
func (n *Network) forward(x []float32, rows int, sp *[][]float32) []float32 {
	if n.infer != nil {
		return n.graphForward(x, rows)
	}
	layers := len(n.widths) - 1
	hid := sp
	if hid == nil {
		hid = n.buffers()
		defer n.scratch.Put(hid)
	}
	h := x
	for l := 0; l < layers; l++ {
		in, out := n.widths[l], n.widths[l+1]
		w, b := n.Params[2*l].Data, n.Params[2*l+1].Data
		var o []float32
		if l == layers-1 && sp == nil {
			o = make([]float32, rows*out)
		} else {
			o = hidden(hid, l, rows*out)
		}
		wm := blas32.General{Rows: in, Cols: out, Stride: out, Data: w}
		if rows == 1 {
			// One record: a matrix-vector product, which BLAS does without GEMM's
			// packing and (in Gonum) without spawning workers.
			blas32.Gemv(blas.Trans, 1, wm, blas32.Vector{N: in, Inc: 1, Data: h},
				0, blas32.Vector{N: out, Inc: 1, Data: o})
		} else {
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
				blas32.General{Rows: rows, Cols: in, Stride: in, Data: h}, wm,
				0, blas32.General{Rows: rows, Cols: out, Stride: out, Data: o})
		}
		kind := n.Spec.Activation
		if l == layers-1 {
			kind = "" // the output layer is linear
		}
		biasActivate(kind, o, b)
		h = o
	}
	return h
}

// buffers takes a set of layer buffers from the pool.
func (n *Network) buffers() *[][]float32 {
	if sp, ok := n.scratch.Get().(*[][]float32); ok {
		return sp
	}
	return &[][]float32{}
}

// hidden returns buffer l of the pool entry, at least size long.
func hidden(sp *[][]float32, l, size int) []float32 {
	for len(*sp) <= l {
		*sp = append(*sp, nil)
	}
	if cap((*sp)[l]) < size {
		(*sp)[l] = make([]float32, size)
	}
	return (*sp)[l][:size]
}

// biasActivateGo adds bias b to every row of v and applies the activation (none for
// ""), in one pass. ReLU and LeakyReLU are branch-free: on real inputs about half the
// values are negative, and a branch per value mispredicted often enough to take a
// sixth of a batch's scoring time. The OpenBLAS build does the linear, ReLU and
// LeakyReLU cases in C (fused_openblas.go) with these bits.
func biasActivateGo(kind string, v, b []float32) {
	d := len(b)
	for r := 0; r+d <= len(v); r += d {
		row := v[r : r+d : r+d]
		switch kind {
		case "":
			for j := range row {
				row[j] += b[j]
			}
		case ReLU:
			for j := range row {
				u := math.Float32bits(row[j] + b[j])
				row[j] = math.Float32frombits(u &^ uint32(int32(u)>>31)) // sign set -> +0
			}
		case LeakyReLU:
			for j := range row {
				x := row[j] + b[j]
				neg := float32(math.Float32bits(x) >> 31) // 1 when negative
				row[j] = x * (1 - neg*(1-leakySlope))     // leakyFactor when negative
			}
		case Tanh:
			for j := range row {
				row[j] = float32(math.Tanh(float64(row[j] + b[j])))
			}
		case Sigmoid:
			for j := range row {
				row[j] = sigmoid(row[j] + b[j])
			}
		}
	}
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// Scores is each row's raw anomaly score: an autoencoder's mean squared reconstruction
// error, or a classifier's anomaly probability.
func (n *Network) Scores(x []float32, rows int) []float32 {
	scores, _ := n.score(x, rows, false)
	return scores
}

// Explain is Scores plus, for an autoencoder, each feature's share of its row's squared
// reconstruction error (rows x features, nil for a classifier), from one forward pass.
func (n *Network) Explain(x []float32, rows int) (scores, shares []float32) {
	return n.score(x, rows, true)
}

func (n *Network) score(x []float32, rows int, explain bool) (scores, shares []float32) {
	var out []float32
	if explain {
		out = n.Forward(x, rows) // becomes the shares: the caller's
	} else {
		sp := n.buffers()
		defer n.scratch.Put(sp)
		out = n.forward(x, rows, sp)
	}
	scores = make([]float32, rows)
	if n.Spec.Type == MLPClassifier {
		for i := range scores {
			scores[i] = sigmoid(out[i])
		}
		return scores, nil
	}
	d := n.Spec.Inputs
	if !explain {
		rowSSE(scores, out, x, d)
		for i := range scores {
			scores[i] /= float32(d)
		}
		return scores, nil
	}
	for i := range scores {
		var total float32
		row, in := out[i*d:(i+1)*d], x[i*d:(i+1)*d]
		for j := range row {
			e := row[j] - in[j]
			total += e * e
			row[j] = e * e // out is ours: reuse it for the shares
		}
		scores[i] = total / float32(d)
		if total > 0 {
			for j := range row {
				row[j] /= total
			}
		}
	}
	return scores, out
}

// rowSSEGo writes each row's sum of squared differences between out and x (rows of
// width d) into sse, summed in order.
func rowSSEGo(sse, out, x []float32, d int) {
	for i := range sse {
		var total float32
		row, in := out[i*d:(i+1)*d:(i+1)*d], x[i*d:(i+1)*d:(i+1)*d]
		for j := range row {
			e := row[j] - in[j]
			total += e * e
		}
		sse[i] = total
	}
}

// Loss is the training loss over rows: the mean squared error of an autoencoder, or
// the binary cross-entropy of a classifier against labels y.
func (n *Network) Loss(x, y []float32, rows int) float64 {
	if rows == 0 {
		return math.NaN()
	}
	out := n.Forward(x, rows)
	var sum float64
	if n.Spec.Type == MLPClassifier {
		for i := 0; i < rows; i++ {
			z := float64(out[i])
			// softplus(z) - y*z, the stable form of the cross-entropy.
			sum += math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) - float64(y[i])*z
		}
		return sum / float64(rows)
	}
	for i, v := range out {
		e := float64(v - x[i])
		sum += e * e
	}
	return sum / float64(len(out))
}
