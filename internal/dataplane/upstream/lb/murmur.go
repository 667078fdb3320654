package lb

import "encoding/binary"

// murmurSeed is Envoy's MurmurHash::STD_HASH_SEED.
const murmurSeed = 0xc70f6907

// murmurHash2 is Envoy's MurmurHash::murmurHash2, the 64-bit MurmurHash2
// of libstdc++'s _Hash_bytes, used by rings with hash_function
// MURMUR_HASH_2.
func murmurHash2(key []byte, seed uint64) uint64 {
	const mul = 0xc6a4a7935bd1e995
	shiftMix := func(v uint64) uint64 { return v ^ (v >> 47) }
	n := len(key)
	aligned := n &^ 7
	hash := seed ^ (uint64(n) * mul)
	for p := 0; p < aligned; p += 8 {
		data := shiftMix(binary.LittleEndian.Uint64(key[p:])*mul) * mul
		hash ^= data
		hash *= mul
	}
	if rest := key[aligned:]; len(rest) > 0 {
		var data uint64
		for i := len(rest) - 1; i >= 0; i-- {
			data = data<<8 + uint64(rest[i])
		}
		hash ^= data
		hash *= mul
	}
	hash = shiftMix(hash) * mul
	return shiftMix(hash)
}
