"""CIFAR-10 folder and archive problems: messages that say what is wrong and where."""
import hashlib
import io
import os
import pathlib
import tarfile

import pytest

from minicnn.data import cifar10, download_cifar10, load_cifar10

FOLDER = cifar10.FOLDER


def archive_bytes(members):
    """A .tar.gz of ``members``: (name, bytes) for files, (name, None, target) for symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob, *link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link[0]
                tar.addfile(info)
            else:
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def download(tmp_path, blob):
    """download_cifar10 from a file:// URL holding ``blob``; returns (root, url, error)."""
    source = tmp_path / "served.tar.gz"
    source.write_bytes(blob)
    url = pathlib.Path(source).as_uri()
    root = tmp_path / "data"
    with pytest.raises(ValueError) as info:
        download_cifar10(root, url=url, md5=hashlib.md5(blob).hexdigest())
    assert os.listdir(root) == []  # nothing kept: no archive, no temp folder
    return url, str(info.value)


def test_member_escaping_the_folder_is_reported_as_such(tmp_path):
    url, message = download(tmp_path, archive_bytes([(f"{FOLDER}/data_batch_1", b"x"),
                                                     ("../evil.txt", b"gotcha")]))
    assert message.startswith(f"the archive from {url} holds member '../evil.txt', which would "
                              f"escape the folder it is extracted into")
    assert "truncated" not in message and "download-" not in message  # no deleted temp path
    assert not (tmp_path / "evil.txt").exists()
    assert isinstance(cifar10.UnsafeArchiveError(message), ValueError)


def test_link_member_is_reported_as_such(tmp_path):
    url, message = download(tmp_path, archive_bytes([(f"{FOLDER}/data_batch_1", None, "/etc/passwd")]))
    assert f"the archive from {url} holds member '{FOLDER}/data_batch_1', which is not a " \
           f"regular file or folder" in message


def test_truncated_archive_names_the_source_not_the_temp_file(tmp_path):
    blob = archive_bytes([(f"{FOLDER}/data_batch_1", os.urandom(50_000))])
    url, message = download(tmp_path, blob[: len(blob) // 2])
    assert message.startswith(f"the archive from {url} is truncated or corrupt")
    assert "download it again" in message and "download-" not in message


def test_broken_symlink_for_the_cifar_folder(tmp_path):
    (tmp_path / FOLDER).symlink_to(tmp_path / "moved-away")
    for call in (lambda: load_cifar10(tmp_path),
                 lambda: download_cifar10(tmp_path, url="http://127.0.0.1:9/never-fetched")):
        with pytest.raises(FileNotFoundError, match=rf"CIFAR-10 folder .*{FOLDER} is a broken "
                                                    rf"symbolic link \(to '.*moved-away', which "
                                                    rf"does not exist\); fix the link or remove it"):
            call()
    assert os.path.islink(tmp_path / FOLDER)  # left as it was


def test_broken_symlink_for_the_data_folder_and_for_a_batch_file(tmp_path):
    root = tmp_path / "data"
    root.symlink_to(tmp_path / "unmounted-disk")
    with pytest.raises(FileNotFoundError, match=r"data folder .*data is a broken symbolic link"):
        load_cifar10(root)
    with pytest.raises(FileNotFoundError, match=r"data folder .*data is a broken symbolic link"):
        download_cifar10(root, url="http://127.0.0.1:9/never-fetched")
    real = tmp_path / "real"
    folder = real / FOLDER
    folder.mkdir(parents=True)
    for name in cifar10.ALL_FILES:
        (folder / name).write_bytes(b"")
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 file .*data_batch_3 is a broken symbolic link"):
        load_cifar10(real)


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / FOLDER).write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=rf"CIFAR-10 folder .*{FOLDER} is a file, not a folder"):
        load_cifar10(tmp_path)
