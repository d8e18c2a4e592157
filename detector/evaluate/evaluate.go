// Package evaluate measures how well scores separate labelled anomalies from normal rows.
package evaluate

import (
	"math"
	"sort"
)

// Counts is a confusion matrix at a threshold: anomaly means score > threshold.
type Counts struct {
	TP int `json:"truePositives"`
	FP int `json:"falsePositives"`
	TN int `json:"trueNegatives"`
	FN int `json:"falseNegatives"`
}

// AtThresholdMetrics are the metrics of one threshold.
type AtThresholdMetrics struct {
	Threshold float64 `json:"threshold"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Counts
}

// Metrics summarise a labelled evaluation.
type Metrics struct {
	Rows      int     `json:"rows"`
	Anomalies int     `json:"anomalies"`
	AUROC     float64 `json:"auroc"`
	AUPRC     float64 `json:"auprc"`
	AtThresholdMetrics
}

// AtThreshold counts the confusion matrix of scores > t against labels.
func AtThreshold(scores, labels []float32, t float64) AtThresholdMetrics {
	m := AtThresholdMetrics{Threshold: t}
	for i, s := range scores {
		pred, pos := float64(s) > t, labels[i] > 0.5
		switch {
		case pred && pos:
			m.TP++
		case pred && !pos:
			m.FP++
		case !pred && pos:
			m.FN++
		default:
			m.TN++
		}
	}
	m.Precision = ratio(m.TP, m.TP+m.FP)
	m.Recall = ratio(m.TP, m.TP+m.FN)
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	return m
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Evaluate computes every metric; AUROC and AUPRC are NaN when one class is missing.
func Evaluate(scores, labels []float32, threshold float64) Metrics {
	m := Metrics{Rows: len(scores), AtThresholdMetrics: AtThreshold(scores, labels, threshold)}
	m.Anomalies = m.TP + m.FN
	m.AUROC, m.AUPRC = AUROC(scores, labels), AUPRC(scores, labels)
	return m
}

// AUROC is the probability that a random anomaly scores above a random normal row,
// ties counting half (the Mann-Whitney U statistic).
func AUROC(scores, labels []float32) float64 {
	idx := order(scores)
	var pos, neg int
	var rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks i+1..j share their mean
		for _, k := range idx[i:j] {
			if labels[k] > 0.5 {
				pos++
				rankSum += avgRank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
}

// AUPRC is the average precision: the mean of the precision at each anomaly's rank,
// rows with equal scores taken together.
func AUPRC(scores, labels []float32) float64 {
	idx := order(scores)
	var total int
	for _, l := range labels {
		if l > 0.5 {
			total++
		}
	}
	if total == 0 || total == len(labels) {
		return math.NaN()
	}
	var tp, seen int
	var ap, prevRecall float64
	for i := len(idx); i > 0; { // from the highest score down
		j := i
		for j > 0 && scores[idx[j-1]] == scores[idx[i-1]] {
			j--
		}
		for _, k := range idx[j:i] {
			seen++
			if labels[k] > 0.5 {
				tp++
			}
		}
		recall := float64(tp) / float64(total)
		ap += (recall - prevRecall) * float64(tp) / float64(seen)
		prevRecall = recall
		i = j
	}
	return ap
}

// order returns row indices sorted by ascending score.
func order(scores []float32) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	return idx
}
