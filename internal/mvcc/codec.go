package mvcc

import (
	"encoding/binary"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var errBadKV = errors.New("mvcc: malformed stored KeyValue")

// decodeKV decodes a marshaled mvccpb.KeyValue into kv with one allocation
// shared by key and value (the generated Unmarshal makes one each), which
// matters on the read path. data may be backend memory that goes away, so
// nothing in kv aliases it. With keysOnly the value is skipped.
func decodeKV(kv *mvccpb.KeyValue, data []byte, keysOnly bool) error {
	var keyOff, keyLen, valOff, valLen int
	var hasKey, hasVal bool
	*kv = mvccpb.KeyValue{}
	for i := 0; i < len(data); {
		tag, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return errBadKV
		}
		i += n
		field, wire := tag>>3, tag&7
		switch wire {
		case 0:
			x, n := binary.Uvarint(data[i:])
			if n <= 0 {
				return errBadKV
			}
			i += n
			switch field {
			case 2:
				kv.CreateRevision = int64(x)
			case 3:
				kv.ModRevision = int64(x)
			case 4:
				kv.Version = int64(x)
			case 6:
				kv.Lease = int64(x)
			}
		case 2:
			l, n := binary.Uvarint(data[i:])
			if n <= 0 || l > uint64(len(data)-i-n) {
				return errBadKV
			}
			i += n
			switch field {
			case 1:
				keyOff, keyLen, hasKey = i, int(l), true
			case 5:
				valOff, valLen, hasVal = i, int(l), true
			}
			i += int(l)
		case 1:
			if len(data)-i < 8 {
				return errBadKV
			}
			i += 8
		case 5:
			if len(data)-i < 4 {
				return errBadKV
			}
			i += 4
		default:
			return errBadKV
		}
	}
	if keysOnly || !hasVal {
		valLen = 0
	}
	buf := make([]byte, keyLen+valLen)
	if hasKey {
		copy(buf, data[keyOff:keyOff+keyLen])
		kv.Key = buf[:keyLen:keyLen]
	}
	if hasVal && !keysOnly {
		copy(buf[keyLen:], data[valOff:valOff+valLen])
		kv.Value = buf[keyLen:]
	}
	return nil
}
