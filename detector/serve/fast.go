package serve

import (
	"math"

	jsoniter "github.com/json-iterator/go"
)

// fastInstances parses the common request, {"instances": [[numbers...], ...]}, straight
// into float32 rows with jsoniter: encoding/json's reflection was nearly half of a
// batch-1 request. Anything unusual (records, a wrong width, a bad value, malformed
// JSON) returns ok == false, and the standard decoder takes over to name the problem.
func fastInstances(body []byte, d, maxInstances int) (x []float32, n int, ok bool) {
	it := jsoniter.ConfigDefault.BorrowIterator(body)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	seen := false
	valid := true
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		if field != "instances" || seen || it.WhatIsNext() != jsoniter.ArrayValue {
			valid = false
			return false
		}
		seen = true
		it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
			if n == maxInstances || it.WhatIsNext() != jsoniter.ArrayValue {
				valid = false
				return false
			}
			width := 0
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				if it.WhatIsNext() != jsoniter.NumberValue || width == d {
					valid = false
					return false
				}
				v := it.ReadFloat64()
				if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
					valid = false
					return false
				}
				x = append(x, float32(v))
				width++
				return true
			})
			if width != d {
				valid = false
			}
			n++
			return valid
		})
		return valid
	})
	if it.Error != nil || !valid || !seen || n == 0 {
		return nil, 0, false
	}
	// Only whitespace may follow the object.
	if it.WhatIsNext() != jsoniter.InvalidValue {
		return nil, 0, false
	}
	return x, n, true
}
