// The batched float32 products of a compiled stack through libxsmm's just-in-time kernels, as torch
// ops: small_gemm::ab (a[i] b[i]), small_gemm::atb (a[i]^T b[i]) and small_gemm::version
// (libxsmm's). libxsmm is column-major, so a row-major C = A B is computed as C^T = B^T A^T. Where
// libxsmm has no kernel for a shape (it makes them for small matrices only) the op is torch's bmm.
#include <ATen/ATen.h>
#include <libxsmm.h>
#include <torch/library.h>

namespace {

const float one = 1.f, zero = 0.f;
[[maybe_unused]] const int initialized = (libxsmm_init(), 0);

// A view whose matrices are each row-major and dense (any batch stride), as the kernels read them.
at::Tensor dense_rows(const at::Tensor& x) {
  return x.stride(2) == 1 && x.stride(1) == x.size(2) ? x : x.contiguous();
}

void check(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "small_gemm: two (B, rows, cols) stacks");
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat, "small_gemm: float32 only");
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "small_gemm: CPU tensors only");
}

// c[i] (M x N) = op(a[i]) b[i]: a[i] stored M x K or (ta) K x M, b[i] stored K x N.
at::Tensor batched(const at::Tensor& a_, const at::Tensor& b_, bool ta) {
  check(a_, b_);
  const at::Tensor a = dense_rows(a_), b = dense_rows(b_);
  const int64_t batch = a.size(0), M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
  const int64_t N = b.size(2);
  TORCH_CHECK(b.size(1) == K, "small_gemm: inner sizes differ");
  const libxsmm_blasint lda = N, ldb = ta ? M : K, ldc = N;
  const int flags = ta ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const libxsmm_smmfunction kernel = libxsmm_smmdispatch(N, M, K, &lda, &ldb, &ldc, &one, &zero, &flags, nullptr);
  if (kernel == nullptr) return at::bmm(ta ? a.transpose(1, 2) : a, b);
  at::Tensor c = at::empty({batch, M, N}, a.options());
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  for (int64_t i = 0; i < batch; i++) kernel(pb + i * b.stride(0), pa + i * a.stride(0), pc + i * M * N);
  return c;
}

at::Tensor ab(const at::Tensor& a, const at::Tensor& b) { return batched(a, b, false); }
at::Tensor atb(const at::Tensor& a, const at::Tensor& b) { return batched(a, b, true); }

std::string version() { return LIBXSMM_VERSION; }

}  // namespace

TORCH_LIBRARY(small_gemm, m) {
  m.def("ab(Tensor a, Tensor b) -> Tensor");
  m.def("atb(Tensor a, Tensor b) -> Tensor");
  m.def("version() -> str", version);
}

TORCH_LIBRARY_IMPL(small_gemm, CPU, m) {
  m.impl("ab", ab);
  m.impl("atb", atb);
}
