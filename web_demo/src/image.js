// Pixels in: decoded photos and video frames as tightly packed RGB {data, width, height}.

function rgbFromRgba(rgba, width, height) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { data[j] = rgba[i]; data[j + 1] = rgba[i + 1]; data[j + 2] = rgba[i + 2]; }
  return { data, width, height };
}

/** RGB pixels of a drawable (ImageBitmap, video element) via a 2D canvas. */
export function rgbOf(source, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return rgbFromRgba(ctx.getImageData(0, 0, width, height).data, width, height);
}

/** Decodes PNG/JPEG bytes (Blob) without colour conversion; upright per EXIF, as the desktop demo. */
export async function decodeImage(blob) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  try {
    return rgbOf(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

/** The current frame of a playing <video>. */
export function grabFrame(video) {
  return rgbOf(video, video.videoWidth, video.videoHeight);
}

/** Draws an RGB image into a <canvas> (resizing the canvas to it). */
export function drawRgb(canvas, image) {
  canvas.width = image.width;
  canvas.height = image.height;
  const rgba = new Uint8ClampedArray(image.width * image.height * 4);
  for (let i = 0, j = 0; j < image.data.length; i += 4, j += 3) { rgba[i] = image.data[j]; rgba[i + 1] = image.data[j + 1]; rgba[i + 2] = image.data[j + 2]; rgba[i + 3] = 255; }
  canvas.getContext('2d').putImageData(new ImageData(rgba, image.width, image.height), 0, 0);
}
