"""Augmentations: random erasing's statistics against torchvision's defaults (fraction erased,
area and aspect of the rectangles), the fast path against the plain one, the caller's array
left alone; pipelines named by a spec ("crop,flip,erase") and the older names."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.data import (
    AUGMENTATIONS,
    Compose,
    DataLoader,
    augment_crop_flip,
    build_augment,
    erasing_boxes,
    parse_augment,
    preprocess,
    random_crop,
    random_erasing,
    random_erasing_reference,
    random_flip,
)

P, SCALE, RATIO = 0.5, (0.02, 0.33), (0.3, 3.3)  # torchvision's RandomErasing defaults


def within(fraction, p, n, sigmas=4):
    return abs(fraction - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def boxes_from(out, erased_value=0):
    """(h, w, erased pixels) per image of a 1-channel output of all-ones images."""
    mask = out[:, 0] == erased_value
    return mask.any(axis=2).sum(axis=1), mask.any(axis=1).sum(axis=1), mask.sum(axis=(1, 2))


def assert_sides_come_from_the_ranges(h, w, area):
    """h = round(sqrt(A r)), w = round(sqrt(A / r)): some area A in the scale range and some
    ratio r in the ratio range must round to each (h, w)."""
    assert ((h + 0.5) * (w + 0.5) >= SCALE[0] * area).all()
    assert ((h - 0.5) * (w - 0.5) <= SCALE[1] * area).all()
    assert ((h + 0.5) / (w - 0.5) >= RATIO[0]).all()
    assert ((h - 0.5) / (w + 0.5) <= RATIO[1]).all()


# ---------------------------------------------------------------- random erasing statistics

def test_erasing_fraction_area_and_aspect_follow_the_defaults():
    n, size = 20_000, 32
    top, left, h, w = erasing_boxes(n, size, size, rng=0)
    erased = h > 0
    assert within(erased.mean(), P, n)  # about half the images
    assert within((erasing_boxes(n, size, size, rng=1, p=0.2)[2] > 0).mean(), 0.2, n)
    h, w, top, left = h[erased], w[erased], top[erased], left[erased]
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= size).all() and (left + w <= size).all()
    assert (h < size).all() and (w < size).all()
    area = size * size
    assert_sides_come_from_the_ranges(h, w, area)
    # and the ranges are used to their ends
    fraction, log_aspect = h * w / area, np.log(h / w)
    assert fraction.min() < 0.025 and fraction.max() > 0.30
    assert log_aspect.min() < math.log(0.35) and log_aspect.max() > math.log(3.0)
    # log-uniform aspect: as many rectangles taller than wide as wider than tall
    assert within((h > w).mean() / ((h != w).mean()), 0.5, int((h != w).sum()))


@pytest.mark.parametrize("erase", [random_erasing, random_erasing_reference])
def test_erasing_blanks_one_rectangle_in_about_p_of_the_images(erase):
    n, size = 4000, 32
    out = erase(np.ones((n, 1, size, size), np.float32), rng=1)
    h, w, pixels = boxes_from(out)
    erased = pixels > 0
    assert within(erased.mean(), P, n)
    assert (pixels == h * w).all()  # the erased pixels form one full rectangle
    assert_sides_come_from_the_ranges(h[erased], w[erased], size * size)


def test_the_fast_and_the_plain_erasing_draw_from_the_same_distribution():
    n, size = 4000, 32
    x = np.ones((n, 1, size, size), np.float32)
    stats = []
    for erase in (random_erasing, random_erasing_reference):
        h, w, pixels = boxes_from(erase(x, rng=2))
        erased = pixels > 0
        stats.append((erased.mean(), (pixels[erased] / size ** 2).mean(),
                      np.log(h[erased] / w[erased]).mean()))
    (f1, a1, r1), (f2, a2, r2) = stats
    se = math.sqrt(2 * P * (1 - P) / n)
    assert abs(f1 - f2) < 4 * se
    # area fractions spread over about (0.02, 0.33) (sd about 0.09); log aspects over
    # (log 0.3, log 3.3) (sd about 0.7); about 2000 rectangles each
    assert abs(a1 - a2) < 4 * 0.09 * math.sqrt(2 / 2000)
    assert abs(r1 - r2) < 4 * 0.7 * math.sqrt(2 / 2000)
    assert abs(r1) < 4 * 0.7 / math.sqrt(2000)  # centred on a square


def test_erasing_blanks_exactly_the_drawn_rectangles_with_each_channels_value():
    x = np.random.default_rng(0).normal(size=(50, 3, 12, 10)).astype(np.float32)
    out = random_erasing(x, rng=3, value=(1.0, 2.0, 3.0))
    top, left, h, w = erasing_boxes(50, 12, 10, rng=3)
    expected = x.copy()
    for k in range(50):  # the plain way, one image at a time
        expected[k, :, top[k]:top[k] + h[k], left[k]:left[k] + w[k]] = \
            np.array([1.0, 2.0, 3.0])[:, None, None]
    np.testing.assert_array_equal(out, expected)
    assert 10 < (h > 0).sum() < 40


def test_random_value_is_standard_normal_noise_on_the_rectangle_only():
    x = np.full((400, 2, 16, 16), 7.0, np.float32)
    out = random_erasing(x, rng=4, p=1, value="random")
    noise = out[out != 7.0]
    assert out.dtype == np.float32 and noise.size > 400 * 2 * 0.02 * 256
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    changed = (out != 7.0).any(axis=1)  # both channels erased on the same rectangle
    assert ((out != 7.0).sum(axis=1)[changed] == 2).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 6), c=st.integers(1, 3), height=st.integers(1, 24),
       width=st.integers(1, 24), p=st.floats(0, 1),
       scale=st.lists(st.floats(0, 1), min_size=2, max_size=2).map(sorted),
       ratio=st.lists(st.floats(0.1, 10), min_size=2, max_size=2).map(sorted),
       seed=st.integers(0, 2 ** 32 - 1))
def test_any_shape_and_ranges_erase_one_fitting_rectangle_or_nothing(
        n, c, height, width, p, scale, ratio, seed):
    x = np.random.default_rng(seed).normal(size=(n, c, height, width)).astype(np.float32) + 5
    before = x.copy()
    out = random_erasing(x, seed, p, scale, ratio)
    np.testing.assert_array_equal(x, before)
    top, left, h, w = erasing_boxes(n, height, width, seed, p, scale, ratio)
    assert ((h < height) | (h == 0)).all() and ((w < width) | (w == 0)).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    area = height * width
    on = (h > 0) & (w > 0)
    assert ((h[on] + 0.5) * (w[on] + 0.5) >= scale[0] * area).all()
    assert ((h[on] - 0.5) * (w[on] - 0.5) <= scale[1] * area).all()
    assert ((h[on] - 0.5) / (w[on] + 0.5) <= ratio[1]).all()
    assert ((h[on] + 0.5) / np.maximum(w[on] - 0.5, 1e-9) >= ratio[0]).all()
    erased = out == 0
    for k in range(n):
        box = np.zeros((height, width), bool)
        box[top[k]:top[k] + h[k], left[k]:left[k] + w[k]] = True
        assert (erased[k] == box).all()  # the same rectangle on every channel


# ---------------------------------------------------------------- boundaries and inputs

def test_p_zero_erases_nothing_and_p_one_erases_every_image():
    x = np.ones((300, 1, 32, 32), np.float32)
    np.testing.assert_array_equal(random_erasing(x, rng=0, p=0), x)
    assert (boxes_from(random_erasing(x, rng=0, p=1))[2] > 0).all()
    assert (boxes_from(random_erasing_reference(x, rng=0, p=1))[2] > 0).all()


def test_an_image_no_rectangle_fits_is_left_alone():
    # the whole image is never erased (h < H and w < W), as in torchvision
    x = np.ones((20, 1, 6, 6), np.float32)
    for erase in (random_erasing, random_erasing_reference):
        np.testing.assert_array_equal(erase(x, rng=0, p=1, scale=(1, 1), ratio=(1, 1)), x)
    # one row less than the image fits
    top, left, h, w = erasing_boxes(20, 6, 6, rng=0, p=1, scale=(25 / 36, 25 / 36),
                                    ratio=(1, 1))
    assert (h == 5).all() and (w == 5).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("value", [0, "random"])
@pytest.mark.parametrize("erase", [random_erasing, random_erasing_reference])
def test_erasing_never_writes_into_the_callers_array(dtype, value, erase):
    if value == "random" and dtype == np.uint8:
        return
    x = (np.random.default_rng(0).random((30, 3, 8, 8)) * 200 + 1).astype(dtype)
    before = x.copy()
    for p in (0.0, 1.0):
        out = erase(x, rng=5, p=p, value=value)
        np.testing.assert_array_equal(x, before)
        assert not np.shares_memory(out, x) and out.dtype == x.dtype and out.shape == x.shape


def test_erasing_is_reproducible_from_its_seed():
    x = np.ones((64, 1, 16, 16), np.float32)
    np.testing.assert_array_equal(random_erasing(x, rng=7), random_erasing(x, rng=7))
    assert (random_erasing(x, rng=7) != random_erasing(x, rng=8)).any()
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(3):  # a Generator carries on from one batch to the next
        np.testing.assert_array_equal(random_erasing(x, g1), random_erasing(x, g2))


def test_an_empty_batch():
    assert random_erasing(np.zeros((0, 3, 8, 8), np.float32), rng=0).shape == (0, 3, 8, 8)


@pytest.mark.parametrize("kw, error, match", [
    (dict(p=-0.01), ValueError, r"p must be between 0 and 1, got -0.01"),
    (dict(p=1.01), ValueError, r"p must be between 0 and 1, got 1.01"),
    (dict(scale=(0.33, 0.02)), ValueError, r"scale must be \(min, max\) with min <= max"),
    (dict(scale=(-0.1, 0.3)), ValueError, r"scale must lie between 0 and 1"),
    (dict(scale=(0.1, 1.01)), ValueError, r"scale must lie between 0 and 1"),
    (dict(scale=0.3), TypeError, r"scale must be a pair \(min, max\), got 0.3"),
    (dict(ratio=(3.3, 0.3)), ValueError, r"ratio must be \(min, max\) with min <= max"),
    (dict(ratio=(0, 3.3)), ValueError, r"ratio must be positive, got \(0, 3.3\)"),
    (dict(ratio=(1, 2, 3)), TypeError, r"ratio must be a pair"),
    (dict(value="noise"), ValueError, r"value must be .* or 'random', got 'noise'"),
    (dict(value=None), TypeError, r"value must be .* got NoneType"),
    (dict(value=(1, 2)), ValueError, r"value must be one number or one per channel \(3\), got 2 numbers"),
])
def test_erasing_refuses_bad_arguments_in_one_line(kw, error, match):
    x = np.zeros((2, 3, 8, 8), np.float32)
    for erase in (random_erasing, random_erasing_reference):
        with pytest.raises(error, match="random_erasing: " + match) as info:
            erase(x, rng=0, **kw)
        assert "\n" not in str(info.value)


def test_the_ranges_are_inclusive():
    x = np.ones((50, 3, 8, 8), np.float32)
    for kw in (dict(p=0), dict(p=1), dict(scale=(0, 1)), dict(scale=(0.2, 0.2)),
               dict(ratio=(1, 1)), dict(value=(1,)), dict(value=(1, 2, 3))):
        random_erasing(x, rng=0, **kw)


def test_random_values_need_float_images():
    with pytest.raises(ValueError, match="value='random' needs float images, got uint8"):
        random_erasing(np.zeros((2, 1, 8, 8), np.uint8), rng=0, value="random")


def test_erasing_needs_images():
    with pytest.raises(ValueError, match=r"x must be images of shape \(N, C, H, W\), got "
                                         r"shape \(8, 8\)"):
        random_erasing(np.zeros((8, 8)), rng=0)


# ---------------------------------------------------------------- pipelines from a spec

@pytest.mark.parametrize("spec, names", [
    ("crop,flip,erase", ("crop", "flip", "erase")),
    (" erase , crop ", ("erase", "crop")),
    ("flip", ("flip",)),
    (["crop", "erase"], ("crop", "erase")),
    ("crop-flip", ("crop", "flip")),  # the older names
    ("crop-flip,erase", ("crop", "flip", "erase")),
    ("none", ()), (["none"], ()), (False, ()), (None, ()),
    (True, ("crop", "flip")),  # the default: a data set's own
])
def test_parse_augment_reads_names_aliases_and_the_old_values(spec, names):
    assert parse_augment(spec) == names
    assert build_augment(spec).names == names


def test_true_means_the_default_given():
    assert parse_augment(True, default="crop") == ("crop",)
    assert parse_augment(True, default="crop,flip,erase") == ("crop", "flip", "erase")


@pytest.mark.parametrize("spec, match", [
    ("blur", r"unknown augmentation 'blur'; allowed: crop, flip, erase"),
    ("crop,blur", r"unknown augmentation 'blur' in 'crop,blur'; allowed: crop, flip, erase"),
    ("crop,,flip", r"unknown augmentation '' in 'crop,,flip'"),
    ("", r"unknown augmentation ''; allowed"),
    ("Crop", r"unknown augmentation 'Crop'"),
    ("none,flip", r"'none' cannot be combined with other augmentations, got 'none,flip'"),
])
def test_a_bad_spec_is_one_line_naming_the_flag_the_name_and_the_allowed_ones(spec, match):
    with pytest.raises(ValueError, match="--augment: " + match) as info:
        build_augment(spec, what="--augment")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", [3, 0.5, ["crop", 1], b"crop"])
def test_a_spec_of_another_type_is_refused(spec):
    with pytest.raises(TypeError, match=r"augment: expected true, false, a name or "
                                        r"comma-separated names \(crop, flip, erase"):
        parse_augment(spec)


def test_pipelines_give_the_old_augmentations_bit_for_bit():
    x = np.random.default_rng(0).normal(size=(40, 3, 16, 16)).astype(np.float32)
    old = augment_crop_flip(x, np.random.default_rng(1))
    for spec in (True, "crop,flip", "crop-flip", ["crop", "flip"]):
        np.testing.assert_array_equal(build_augment(spec)(x, np.random.default_rng(1)), old)
    np.testing.assert_array_equal(build_augment("crop")(x, 2), random_crop(x, 4, 2))
    np.testing.assert_array_equal(build_augment("flip")(x, 3), random_flip(x, 3))
    g = np.random.default_rng(4)
    expected = random_erasing(augment_crop_flip(x, g), g)
    np.testing.assert_array_equal(build_augment("crop,flip,erase")(x, 4), expected)


def test_steps_apply_in_the_order_given():
    x = np.ones((200, 1, 16, 16), np.float32)
    # erasing last leaves zeros in a rectangle; cropping after it moves them and adds a frame
    erased_last = build_augment("crop,erase")(x, 0)
    erased_first = build_augment("erase,crop")(x, 0)
    assert (erased_first != erased_last).any()


def test_the_old_homes_still_import():
    assert preprocess.random_crop is random_crop and preprocess.random_flip is random_flip
    assert preprocess.augment_crop_flip is augment_crop_flip
    assert set(AUGMENTATIONS) == {"crop", "flip", "erase"}


def test_compose_spec_repr_and_emptiness():
    pipeline = build_augment("crop-flip,erase")
    assert pipeline.spec == "crop,flip,erase" and repr(pipeline) == "Compose('crop,flip,erase')"
    assert parse_augment(pipeline.spec) == pipeline.names
    assert len(pipeline) == 3 and pipeline
    empty = build_augment("none")
    assert not empty and empty.spec == "none"
    x = np.ones((2, 1, 4, 4))
    assert empty(x, 0) is x
    custom = build_augment(lambda xb, rng: xb + 1)
    assert len(custom) == 1 and (custom(x, 0) == 2).all()
    assert build_augment(pipeline) is pipeline
    assert Compose(["flip", random_crop]).names == ("flip", "random_crop")
    assert Compose(["crop-flip", "erase"]).names == ("crop", "flip", "erase")
    with pytest.raises(ValueError, match="Compose: unknown augmentation 'blur'; allowed: crop"):
        Compose(["flip", "blur"])
    with pytest.raises(TypeError, match="Compose: a step must be a name .* got 3"):
        Compose(["flip", 3])


def test_the_loader_takes_a_spec():
    y = np.arange(64)
    x = np.ones((64, 1, 16, 16), np.float32)
    batches = lambda augment, seed: [xb for xb, _ in DataLoader(x, y, 16, augment=augment,
                                                                 rng=seed, check_inputs=False)]
    a, b = batches("crop,flip,erase", 0), batches("crop,flip,erase", 0)
    assert all((u == v).all() for u, v in zip(a, b))  # the same seed, the same batches
    assert any((xb == 0).all(axis=1).any() for xb in a)  # something was erased or padded
    assert all((xb == 1).all() for xb in batches("none", 0))
    assert all((xb == 1).all() for xb in batches(False, 0))
    with pytest.raises(ValueError, match="DataLoader: augment: unknown augmentation 'blur'"):
        DataLoader(x, y, 16, augment="crop,blur", check_inputs=False)
