"""Quality metrics (pure JAX, jit-able, batched over leading axes), BD-rate and complexity.

- `psnr`: per-plane PSNR and weighted PSNR-YUV (6:1:1 default, 4:1:1, 10:1:1), 8/10-bit.
- `ssim`: SSIM (Wang 2004) equal to scikit-image's Gaussian SSIM, MS-SSIM (Wang 2003).
- `dlm`: detail loss metric (Li et al. 2011), the wavelet part of VMAF, differentiable.
- `vmaf`: libvmaf through a user's FFmpeg when it has it, else "unavailable".
- `bdrate`: Bjontegaard delta rate / quality, pchip (JVET CTC) and cubic (VCEG-M33).
- `complexity`: parameters and kMAC/pixel of flax models, EncT/DecT ratios.
"""
