"""Ops a port never issues (skip) or cannot express in ttnn (unsupported), with the reason."""
from __future__ import annotations

from replay.mapping.registry import register_skip, register_unsupported

register_skip("allocates uninitialised memory; a port allocates when the consuming op runs",
              "aten.empty.memory_format", "aten.empty.default", "aten.empty_like.default",
              "aten.new_empty.default", "aten.empty_strided.default", "aten.new_empty_strided.default")
register_skip("autograd/aliasing bookkeeping: same data, a port issues nothing",
              "aten.detach.default", "aten.detach_.default", "aten.alias.default", "aten.lift_fresh.default",
              "aten.lift_fresh_copy.default", "aten.lift.default")
register_skip("reads a value back to the host (Python control flow); not a device op",
              "aten._local_scalar_dense.default", "aten.item.default", "aten.is_nonzero.default",
              "aten.equal.default")
register_skip("random values (inputs or initialisation); a port loads real data from the host",
              "aten.randn.default", "aten.rand.default", "aten.normal_.default", "aten.uniform_.default",
              "aten.randint.low", "aten.bernoulli_.float")
register_skip("identity in eval mode (train=False)", "aten.dropout.default", "aten.dropout_.default",
              "aten.native_dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default")
register_skip("device/layout/dtype bookkeeping a port does once at load time",
              "aten.to.device", "aten.to.prim_device", "aten._has_compatible_shallow_copy_type.default",
              "aten.resolve_conj.default", "aten.resolve_neg.default")
register_unsupported("re-points a tensor at another storage: ttnn has no strided views; a port writes the "
                     "view it means with ttnn.reshape/slice/permute", "aten.set_.source_Storage_storage_offset")
register_unsupported("indexed writes (x[idx] = v): ttnn has no scatter-by-index optrace maps; a port "
                     "uses ttnn.scatter or writes the slices with ttnn.slice_write", "aten.index_put.default",
                     "aten.index_put_.default")
register_unsupported("nonzero: the output's length depends on the data; a port computes the indices on the "
                     "host or keeps the shape with ttnn.where", "aten.nonzero.default")
register_unsupported("index_select with a traced index tensor: the trace keeps the index's shape, not its "
                     "values (torch.export writes swin's shifted-window roll this way); a port uses "
                     "ttnn.roll, or ttnn.embedding/ttnn.gather with real indices. Capture eagerly to see aten.roll",
                     "aten.index_select.default")
register_unsupported("boolean reduction: ttnn has no any/all; a port computes ttnn.max(ttnn.ne(x, 0), dim) "
                     "(not mapped in optrace yet)", "aten.any.dim", "aten.all.dim")
register_unsupported("unique: the output's length depends on the data and ttnn has no unique; a port reads the "
                     "labels back and takes torch.unique on the host (detection post-processing: a few thousand "
                     "ints)", "aten._unique2.default", "aten.unique_dim.default")
register_unsupported("non-maximum suppression: ttnn has no NMS and the kept count depends on the data; a port "
                     "reads boxes and scores back and runs torchvision.ops.nms on the host (tt-metal's models do "
                     "detection post-processing there)", "torchvision.nms.default")
register_unsupported("roi_align: ttnn has no RoI pooling (data-dependent bilinear crops per box); a port runs "
                     "torchvision.ops.roi_align on the host over the read-back FPN level, or writes a custom "
                     "tt-metal kernel", "torchvision.roi_align.default")
register_unsupported("im2col (nn.Unfold): ttnn has no unfold (ttnn.fold is space-to-depth, not col2im); a port "
                     "writes it as ttnn.pad, kernel-many ttnn.slice shifts and ttnn.concat over channels, or as "
                     "ttnn.conv2d with a fixed one-hot weight (not mapped in optrace yet)", "aten.im2col.default")
register_unsupported("bicubic resize: ttnn.upsample interpolates nearest/bilinear only; a port resizes the "
                     "constant (a position embedding, the input image) on the host at load time, or accepts "
                     "bilinear", "aten.upsample_bicubic2d.default", "aten.upsample_bicubic2d.vec")
